// The gateway's own log never carries a secret it knows. A canary given to
// an upstream through ${env:…} is printed by that upstream on stderr (which
// the gateway forwards to its log): the log shows <redacted>, never the
// value. A client's API key in a refused request is not logged either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../lib/gateway.mjs';
import { upstreamCommands } from '../lib/paths.mjs';
import { post } from '../lib/mcp.mjs';
import { waitFor } from '../lib/wait.mjs';

const CANARY = 'canary-Zq8rT2vX9wLm4kPj';

// inherit_env hands the child a value from the gateway's own environment:
// when the name says secret, the gateway knows the value and redacts it.
test('a secret passed through inherit_env and printed by an upstream is redacted', async () => {
  const gw = await startGateway(
    {
      upstreams: [{
        name: 'up',
        command: [...upstreamCommands.mini(), '--stderr-env', 'PC_TEST_API_TOKEN'],
        inherit_env: ['PATH', 'PC_TEST_API_TOKEN'],
      }],
    },
    { env: { PC_TEST_API_TOKEN: CANARY } },
  );
  try {
    assert.ok(await waitFor(() => gw.logs.some((l) => /PC_TEST_API_TOKEN=/.test(l.msg)), 5000), 'the line was forwarded');
    const line = gw.logs.find((l) => /PC_TEST_API_TOKEN=/.test(l.msg));
    assert.match(line.msg, /PC_TEST_API_TOKEN=<redacted>/);
    await gw.stop();
    assert.ok(!gw.stderr.includes(CANARY), 'the canary appears nowhere in the log');
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

// As given, and as a Kubernetes secret mounted from a file gives it: with a
// trailing newline, which the child's line-by-line stderr never shows.
for (const [what, value] of [['as given', CANARY], ['with a trailing newline', CANARY + '\n']]) {
test(`a secret from \${env:} printed by an upstream is redacted in the gateway log (${what})`, async () => {
  const gw = await startGateway(
    {
      upstreams: [
        {
          name: 'up',
          command: [...upstreamCommands.mini(), '--stderr-env', 'UPSTREAM_CREDENTIAL'],
          env: { UPSTREAM_CREDENTIAL: '${env:PC_TEST_CANARY}' },
        },
      ],
    },
    { env: { PC_TEST_CANARY: value } },
  );
  try {
    assert.ok(await waitFor(() => gw.logs.some((l) => /UPSTREAM_CREDENTIAL=/.test(l.msg)), 5000), 'the line was forwarded');
    const line = gw.logs.find((l) => /UPSTREAM_CREDENTIAL=/.test(l.msg));
    assert.match(line.msg, /UPSTREAM_CREDENTIAL=<redacted>/);
    if (value === CANARY) assert.match(line.msg, /Bearer <redacted>/); // else on the next line
    // A bearer credential in a request is never logged either.
    await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { authorization: `Bearer ${CANARY}-not-a-key` });
    await gw.stop();
    assert.ok(!gw.stderr.includes(CANARY), 'the canary appears nowhere in the log');
  } catch (e) {
    await gw.kill();
    throw e;
  }
});
}

test('a resource URI carrying a credential is recorded redacted: userinfo password, ?token=, a secret the gateway knows', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { randomBytes } = await import('node:crypto');
  const { legacyInit } = await import('../lib/mcp.mjs');
  const { readAuditRecords } = await import('../lib/audit.mjs');
  const PASS = `pw-${randomBytes(6).toString('hex')}`, TOKEN = `tok-${randomBytes(6).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redacturi-'));
  const keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const logDir = join(dir, 'audit');
  const gw = await startGateway(
    {
      audit: { dir: logDir, key: `\${file:${keyFile}}` },
      upstreams: [{ name: 'up', command: upstreamCommands.mini(), env: { UPSTREAM_CREDENTIAL: '${env:PC_TEST_CANARY}' } }],
    },
    { env: { PC_TEST_CANARY: CANARY } },
  );
  try {
    const s = await legacyInit(gw.url);
    for (const [id, uri] of [[1, `up+postgres://app:${PASS}@db/x`], [2, `up+mini://hello?token=${TOKEN}&v=1`], [3, `up+mini://item/${CANARY}`]]) {
      const r = await s.request(id, 'resources/read', { uri });
      assert.ok(r.response, JSON.stringify(r));
    }
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const reads = readAuditRecords(logDir).filter((r) => r.method === 'resources/read');
  assert.deepEqual(reads.map((r) => r.tool), ['up+postgres://app:<redacted>@db/x', 'up+mini://hello?token=<redacted>&v=1', 'up+mini://item/<redacted>']);
  const all = JSON.stringify(readAuditRecords(logDir)) + gw.stderr;
  for (const secret of [PASS, TOKEN, CANARY]) assert.ok(!all.includes(secret), `${secret} reached the audit log or the gateway log`);
  rmSync(dir, { recursive: true, force: true });
});

test('an upstream\'s log and progress messages to the client are redacted like its stderr: a secret the gateway gave it does not reach the client', async () => {
  const { legacyInit } = await import('../lib/mcp.mjs');
  const { openStream } = await import('../lib/stream.mjs');
  const gw = await startGateway(
    { upstreams: [{ name: 'up', command: upstreamCommands.mini(), env: { UPSTREAM_CREDENTIAL: '${env:PC_TEST_CANARY}' } }] },
    { env: { PC_TEST_CANARY: CANARY } },
  );
  try {
    const s = await legacyInit(gw.url);
    const st = await openStream(gw.url, { headers: s.headers, body: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__log', arguments: { env: 'UPSTREAM_CREDENTIAL' } } } });
    const got = [];
    for (let m = await st.next(); m; m = await st.next()) got.push(m);
    const log = got.find((m) => m.method === 'notifications/message');
    assert.ok(log, JSON.stringify(got));
    assert.equal(log.params.data, 'hello log UPSTREAM_CREDENTIAL=<redacted>');
    assert.ok(!JSON.stringify(got).includes(CANARY));
    assert.equal(got.at(-1).result?.content?.[0]?.text, 'logged');
    // Progress messages are the upstream's text too; the token stays.
    const pr = await openStream(gw.url, { headers: s.headers, body: { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'up__progress', arguments: { steps: 2, ms: 10, env: 'UPSTREAM_CREDENTIAL' }, _meta: { progressToken: 'pt-1' } } } });
    const prog = [];
    for (let m = await pr.next(); m; m = await pr.next()) prog.push(m);
    const notes = prog.filter((m) => m.method === 'notifications/progress');
    assert.equal(notes.length, 2, JSON.stringify(prog));
    for (const n of notes) {
      assert.equal(n.params.progressToken, 'pt-1');
      assert.equal(n.params.message, 'UPSTREAM_CREDENTIAL=<redacted>');
    }
    assert.ok(!JSON.stringify(prog).includes(CANARY));
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

test('a long stderr line is redacted before it is cut: no prefix of a secret across the cut', async () => {
  // "mini_upstream: UPSTREAM_CREDENTIAL=" is 35 bytes: after 4051 bytes of
  // padding the canary starts at 4086 and crosses the 4096-byte cut.
  const gw = await startGateway(
    {
      upstreams: [{
        name: 'up',
        command: [...upstreamCommands.mini(), '--stderr-pad', '4051', '--stderr-env', 'UPSTREAM_CREDENTIAL'],
        env: { UPSTREAM_CREDENTIAL: '${env:PC_TEST_CANARY}' },
      }],
    },
    { env: { PC_TEST_CANARY: CANARY } },
  );
  try {
    assert.ok(await waitFor(() => gw.logs.some((l) => /^x{4000}/.test(l.msg ?? '')), 5000), 'the line was forwarded');
    await gw.stop();
    assert.ok(!gw.stderr.includes(CANARY.slice(0, 8)), 'no prefix of the canary in the log');
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

test('a secret longer than the logged part of an overlong stderr line leaves no prefix either', async () => {
  // The line (4000 bytes, then a 5011-byte secret) is read in an 8 KiB
  // window: the secret's first 4192 bytes are in it, no longer the whole
  // value, and the log keeps 4096 bytes: 96 of them were the secret's.
  const { randomBytes } = await import('node:crypto');
  const LONG = `LONGCANARY-${randomBytes(2500).toString('hex')}`;
  const gw = await startGateway(
    {
      upstreams: [{
        name: 'up',
        command: [...upstreamCommands.mini(), '--stderr-pad', '3965', '--stderr-env', 'UPSTREAM_CREDENTIAL'],
        env: { UPSTREAM_CREDENTIAL: '${env:PC_TEST_CANARY}' },
      }],
    },
    { env: { PC_TEST_CANARY: LONG } },
  );
  try {
    assert.ok(await waitFor(() => gw.logs.some((l) => /^x{3000}/.test(l.msg ?? '')), 5000), 'the line was forwarded');
    await gw.stop();
    assert.ok(!gw.stderr.includes(LONG.slice(0, 16)), 'no prefix of the secret in the log');
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

test('redaction.keys: a field named in the config never reaches the audit log (and does without it)', async () => {
  const { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { randomBytes } = await import('node:crypto');
  const { legacyInit } = await import('../lib/mcp.mjs');
  const SECRET = `patient-${randomBytes(6).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redactkeys-'));
  const keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const run = async (name, redaction) => {
    const logDir = join(dir, name);
    const gw = await startGateway({
      audit: { dir: logDir, key: `\${file:${keyFile}}` },
      redaction,
      upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
    });
    try {
      const s = await legacyInit(gw.url);
      const r = await s.request(1, 'tools/call', { name: 'up__echo', arguments: { text: 'hi', diagnosis_note: SECRET } });
      assert.equal(r.response.result.content[0].text, 'hi');
    } finally {
      await gw.stop();
    }
    return { audit: readdirSync(logDir).map((f) => readFileSync(join(logDir, f), 'utf8')).join(''), log: gw.stderr };
  };
  try {
    const control = await run('without', undefined);
    assert.ok(control.audit.includes(SECRET), 'control: without the config the field is recorded as sent');
    const guarded = await run('with', { keys: ['Diagnosis-Note'] });
    assert.ok(!guarded.audit.includes(SECRET), 'with redaction.keys it is not (names match case- and separator-insensitively)');
    assert.match(guarded.audit, /"diagnosis_note":"<redacted>"/);
    assert.ok(!guarded.log.includes(SECRET));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an upstream error that quotes its own credential reaches the client redacted, in both forms', async () => {
  const { legacyInit } = await import('../lib/mcp.mjs');
  const gw = await startGateway(
    {
      upstreams: [{ name: 'up', command: upstreamCommands.mini(), env: { UPSTREAM_TOKEN: '${env:PC_TEST_CANARY}' } }],
    },
    { env: { PC_TEST_CANARY: CANARY } },
  );
  try {
    const s = await legacyInit(gw.url);
    const rpc = await s.request(1, 'tools/call', { name: 'up__fail', arguments: { env: 'UPSTREAM_TOKEN' } });
    assert.equal(rpc.response.error.code, -32000);
    assert.equal(rpc.response.error.message, 'upstream failed: UPSTREAM_TOKEN=<redacted>');
    assert.equal(rpc.response.error.data.detail, 'upstream failed: UPSTREAM_TOKEN=<redacted>');
    const tool = await s.request(2, 'tools/call', { name: 'up__fail', arguments: { env: 'UPSTREAM_TOKEN', tool: true } });
    assert.equal(tool.response.result.isError, true);
    assert.equal(tool.response.result.content[0].text, 'upstream failed: UPSTREAM_TOKEN=<redacted>');
    // Control: a variable the gateway does not know as a secret passes.
    const path = await s.request(3, 'tools/call', { name: 'up__fail', arguments: { env: 'PATH', tool: true } });
    assert.match(path.response.result.content[0].text, /PATH=\//);
    for (const r of [rpc, tool]) assert.ok(!r.text.includes(CANARY));
    await gw.stop();
    assert.ok(!gw.stderr.includes(CANARY), 'nor in the log');
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

// After a reload that rotates a secret, upstreams started under the old
// config still hold (and may print) the old value: it stays redacted.
test('a rotated secret stays redacted after SIGHUP while the upstream holding it runs', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { randomBytes } = await import('node:crypto');
  const { legacyInit } = await import('../lib/mcp.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-rotate-'));
  const f = join(dir, 'token');
  const OLD = `old-token-${randomBytes(8).toString('hex')}`;
  const NEW = `new-token-${randomBytes(8).toString('hex')}`;
  writeFileSync(f, OLD, { mode: 0o600 });
  const gw = await startGateway({
    upstreams: [{ name: 'up', command: upstreamCommands.mini(), env: { UPSTREAM_CREDENTIAL: `\${file:${f}}` } }],
  });
  try {
    writeFileSync(f, NEW, { mode: 0o600 });
    gw.proc.kill('SIGHUP');
    assert.ok(await waitFor(() => gw.logs.some((l) => /reload: configuration .* applied/.test(l.msg))));
    const s = await legacyInit(gw.url);
    const r = await s.request(1, 'tools/call', { name: 'up__fail', arguments: { env: 'UPSTREAM_CREDENTIAL', stderr: true, tool: true } });
    assert.ok(!r.text.includes(OLD), 'not in the answer');
    assert.ok(await waitFor(() => gw.logs.some((l) => /upstream failed: UPSTREAM_CREDENTIAL=/.test(l.msg)), 5000), 'the line was forwarded');
    await gw.stop();
    assert.ok(!gw.stderr.includes(OLD), 'the old secret appears nowhere in the log');
  } catch (e) {
    await gw.kill();
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Listeners are bound once: a reload may not move them (nor switch TLS), or
// a public socket could come back judged by a loopback address.
test('SIGHUP with a changed listen address is refused and says why', async () => {
  const { readFileSync, writeFileSync } = await import('node:fs');
  const gw = await startGateway({ upstreams: [{ name: 'up', command: upstreamCommands.mini() }] });
  try {
    const cfg = readFileSync(gw.configPath, 'utf8');
    assert.match(cfg, /listen: .*127\.0\.0\.1:0/);
    writeFileSync(gw.configPath, cfg.replace(/(^|\n)listen: .*\n/, '$1listen: "127.0.0.1:1"\n'));
    gw.proc.kill('SIGHUP');
    assert.ok(await waitFor(() => gw.logs.some((l) => /reload: listen changed; keeping the running configuration/.test(l.msg))), 'refused');
    assert.equal((await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'ping' })).status, 400, 'still serving where it was');
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

test('an upstream\'s sampling request reaches the client redacted, without other servers\' context, and says who asks', async () => {
  const { legacyInit } = await import('../lib/mcp.mjs');
  const { openStream } = await import('../lib/stream.mjs');
  const gw = await startGateway(
    { upstreams: [{ name: 'up', command: upstreamCommands.mini(), env: { UPSTREAM_CREDENTIAL: '${env:PC_TEST_CANARY}' } }] },
    { env: { PC_TEST_CANARY: CANARY } },
  );
  try {
    const s = await legacyInit(gw.url, { capabilities: { sampling: {} } });
    const st = await openStream(gw.url, { headers: s.headers, body: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__sample', arguments: { env: 'UPSTREAM_CREDENTIAL' } } } });
    const req = await st.next();
    assert.equal(req?.method, 'sampling/createMessage', JSON.stringify(req));
    assert.ok(!JSON.stringify(req).includes(CANARY), JSON.stringify(req));
    assert.equal(req.params.messages[0].content.text, 'Summarize (key <redacted>)');
    // "allServers" from the client's side is every upstream behind the
    // gateway: no upstream gets the others' context.
    assert.equal(req.params.includeContext, 'none');
    assert.equal(req.params._meta?.['portcullis/upstream'], 'up');
    const ans = await post(gw.url, { jsonrpc: '2.0', id: req.id, result: { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'm' } }, s.headers);
    assert.equal(ans.status, 202);
    const done = await st.next();
    assert.equal(done?.id, 2, JSON.stringify(done));
    // An elicitation's form keeps its fields, "password" included: names
    // in a request are the server's, not secrets.
    const s2 = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
    const el = await openStream(gw.url, { headers: s2.headers, body: { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'up__elicit', arguments: {} } } });
    const ask = await el.next();
    assert.equal(ask?.method, 'elicitation/create', JSON.stringify(ask));
    assert.deepEqual(ask.params.requestedSchema.properties.password, { type: 'string', format: 'password' });
    el.abort();
    await s2.close();
    await s.close();
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
});
