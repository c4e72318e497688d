// The gateway on HTTPS: SDK clients with an API key and with a JWT over
// TLS, HSTS, mTLS identities mapped to principals, a required client
// certificate (none, or one from an unknown CA: the handshake fails), and
// testssl.sh against the real listener.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, fetch as ufetch } from 'undici';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as HttpV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from '@modelcontextprotocol/client';
import { startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, ROOT, upstreamCommands } from '../lib/paths.mjs';
import { makeIssuer, makeToken, claims } from '../lib/jwt.mjs';
import { waitFor } from '../lib/wait.mjs';

const ISS = 'https://issuer.test';
const AUD = 'https://mcp.test/mcp';
let dir, pki, gw, issuer, apiKey;

const file = (n) => join(pki, n);
const pem = (n) => readFileSync(file(n));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'));
  pki = join(dir, 'pki');
  const mk = spawnSync('bash', [join(ROOT, 'tests/tls/make-certs.sh'), pki], {
    encoding: 'utf8',
    env: { ...process.env, CERT_DAYS: '365' },
  });
  assert.equal(mk.status, 0, mk.stderr);
  issuer = makeIssuer();
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(issuer.jwks));
  writeFileSync(join(dir, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  const auth = {
    api_keys: { store: join(dir, 'keys.db'), pepper: `\${file:${join(dir, 'pepper')}}` },
    oauth: { issuer: ISS, jwks_file: join(dir, 'jwks.json'), resource: AUD },
    mtls: { identities: [{ match: 'spiffe://test.example/agent/*', principal: 'agent-a', roles: ['reader'] }] },
  };
  writeFileSync(join(dir, 'cli.yaml'), toYaml({ auth: { api_keys: auth.api_keys } }));
  const k = spawnSync(PORTCULLIS_BIN, ['keys', 'create', '-c', join(dir, 'cli.yaml'), '--principal', 'tls-user'], { encoding: 'utf8' });
  assert.equal(k.status, 0, k.stderr);
  apiKey = k.stdout.trim();
  gw = await startGateway({
    tls: { cert: file('server.crt'), key: file('server.key'), client_ca: file('ca.crt'), client_auth: 'optional' },
    auth,
    // Everyone may echo; the mTLS identity's role adds `add`.
    policy: {
      default_roles: ['base'],
      roles: {
        base: { tools: [{ match: 'up__echo', access: ['read', 'open_world'] }] },
        reader: { tools: [{ match: 'up__add', access: ['read'] }] },
      },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  gw.https = `https://localhost:${gw.port}/mcp`;
});
after(async () => {
  await gw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** fetch that trusts the test CA (and presents a client cert if given). */
function tlsFetch(client) {
  const agent = new Agent({
    connect: { ca: pem('ca.crt'), ...(client ? { cert: pem(`${client}.crt`), key: pem(`${client}.key`) } : {}) },
  });
  return (url, init) => ufetch(url, { ...init, dispatcher: agent });
}

const initBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
const jsonHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

test('SDK v1 and v2 over HTTPS, each with an API key and with a JWT; HSTS is sent', async () => {
  const jwt = makeToken(issuer, claims(ISS, AUD));
  for (const [cred, value] of [['API key', apiKey], ['JWT', jwt]]) {
    const headers = { authorization: `Bearer ${value}` };
    const v1 = new ClientV1({ name: 't', version: '1' });
    await v1.connect(new HttpV1(new URL(gw.https), { fetch: tlsFetch(), requestInit: { headers } }));
    assert.equal((await v1.callTool({ name: 'up__echo', arguments: { text: `v1 ${cred}` } })).content[0].text, `v1 ${cred}`);
    await v1.close();

    const v2 = new ClientV2({ name: 't', version: '1' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await v2.connect(new HttpV2(new URL(gw.https), { fetch: tlsFetch(), requestInit: { headers } }));
    assert.equal((await v2.callTool({ name: 'up__echo', arguments: { text: `v2 ${cred}` } })).content[0].text, `v2 ${cred}`);
    await v2.close();
  }

  const r = await tlsFetch()(gw.https, { method: 'POST', headers: { ...jsonHeaders, authorization: `Bearer ${apiKey}` }, body: initBody });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('strict-transport-security') ?? '', /max-age=\d+/);
});

test('a client certificate maps to its principal; without any credential: 401', async () => {
  const r = await tlsFetch('client')(gw.https, { method: 'POST', headers: jsonHeaders, body: initBody });
  assert.equal(r.status, 200, 'the SPIFFE id is a principal');
  // The log line travels a pipe; the reply may arrive first.
  await gw.waitForLog((l) => l.msg === 'authenticated' && l.principal === 'agent-a', { timeoutMs: 5000 });
  // The identity's roles reach the policy: it sees `add`, an API key
  // without that role does not.
  const list = async (client, headers = {}) => {
    const f = tlsFetch(client);
    const i = await f(gw.https, { method: 'POST', headers: { ...jsonHeaders, ...headers }, body: initBody });
    const h = { ...jsonHeaders, ...headers, 'mcp-session-id': i.headers.get('mcp-session-id'), 'mcp-protocol-version': '2025-11-25' };
    await i.text();
    const l = await f(gw.https, { method: 'POST', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) });
    const text = await l.text();
    const msg = JSON.parse(text.startsWith('{') ? text : text.split('\n').find((x) => x.startsWith('data: ')).slice(6));
    return msg.result.tools.map((t) => t.name).sort();
  };
  assert.deepEqual(await list('client'), ['up__add', 'up__echo']);
  assert.deepEqual(await list(undefined, { authorization: `Bearer ${apiKey}` }), ['up__echo']);
  // A certificate of the right CA whose identity is not mapped.
  const cn = await tlsFetch('cn-client')(gw.https, { method: 'POST', headers: jsonHeaders, body: initBody });
  assert.equal(cn.status, 401);
  const none = await tlsFetch()(gw.https, { method: 'POST', headers: jsonHeaders, body: initBody });
  assert.equal(none.status, 401);
});

test('plaintext HTTP on the TLS port gets no MCP answer', async () => {
  const r = await fetch(`http://127.0.0.1:${gw.port}/mcp`, { method: 'POST', headers: jsonHeaders, body: initBody }).catch((e) => e);
  assert.ok(r instanceof Error || r.status !== 200);
});

/** A raw TLS handshake; resolves 'ok', or the error code. */
function handshake(port, client) {
  return new Promise((resolve) => {
    const s = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: pem('ca.crt'),
      ...(client ? { cert: pem(`${client}.crt`), key: pem(`${client}.key`) } : {}),
    });
    let done = false;
    const end = (v) => {
      if (!done) {
        done = true;
        resolve(v);
        s.destroy();
      }
    };
    s.on('secureConnect', () => {
      // TLS 1.3 reports a refused client certificate after the handshake:
      // write a request and see whether the server kept the connection.
      s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
      s.once('data', () => end('ok'));
    });
    s.on('error', (e) => end(e.code ?? e.message));
    s.on('close', () => end('closed'));
    setTimeout(() => end('timeout'), 5000);
  });
}

test('the certificate of a trusted proxy does not authenticate the requests it forwards', async () => {
  const viaProxy = await startGateway({
    tls: { cert: file('server.crt'), key: file('server.key'), client_ca: file('ca.crt'), client_auth: 'optional' },
    // The peer (this test, 127.0.0.1) is a declared proxy: its
    // certificate names the proxy, not the client behind it.
    trusted_proxies: ['127.0.0.1/32'],
    auth: { mtls: { identities: [{ match: 'spiffe://test.example/agent/*', principal: 'agent-a' }] } },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const r = await tlsFetch('client')(`https://localhost:${viaProxy.port}/mcp`, { method: 'POST', headers: { ...jsonHeaders, 'x-forwarded-for': '198.51.100.7' }, body: initBody });
    assert.equal(r.status, 401, await r.text());
  } finally {
    await viaProxy.stop();
  }
});

test('client_auth required: no certificate or an unknown CA fails the handshake', async () => {
  const strict = await startGateway({
    tls: { cert: file('server.crt'), key: file('server.key'), client_ca: file('ca.crt'), client_auth: 'required' },
    auth: { mtls: { identities: [{ match: 'spiffe://test.example/agent/a', principal: 'agent-a' }] } },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    assert.notEqual(await handshake(strict.port), 'ok', 'no client certificate');
    assert.notEqual(await handshake(strict.port, 'other-client'), 'ok', 'certificate from an unknown CA');
    assert.equal(await handshake(strict.port, 'client'), 'ok', 'the good certificate');
    const r = await tlsFetch('client')(`https://localhost:${strict.port}/mcp`, { method: 'POST', headers: jsonHeaders, body: initBody });
    assert.equal(r.status, 200, 'and the principal comes from the certificate');
  } finally {
    await strict.stop();
  }
});

/** The subject CN of the certificate a new connection gets. */
function servedCN(port) {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pem('ca.crt') }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end();
      resolve(cn);
    });
    s.on('error', reject);
  });
}

test('SIGHUP reloads the certificate without dropping open connections', async () => {
  const live = join(dir, 'live');
  rmSync(live, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', live]);
  copyFileSync(file('server.crt'), join(live, 'server.crt'));
  copyFileSync(file('server.key'), join(live, 'server.key'));
  spawnSync('chmod', ['600', join(live, 'server.key')]);
  const g = await startGateway({
    tls: { cert: join(live, 'server.crt'), key: join(live, 'server.key') },
    auth: 'none',
    upstreams: [],
  });
  try {
    const before = await servedCN(g.port);
    // A keep-alive connection opened before the reload.
    const agent = new Agent({ connect: { ca: pem('ca.crt') }, keepAliveTimeout: 30000 });
    const hit = () => ufetch(`https://localhost:${g.port}/mcp`, { method: 'POST', headers: jsonHeaders, body: initBody, dispatcher: agent });
    assert.equal((await hit()).status, 200);
    copyFileSync(file('server2.crt'), join(live, 'server.crt'));
    copyFileSync(file('server2.key'), join(live, 'server.key'));
    g.proc.kill('SIGHUP');
    assert.ok(await waitFor(() => g.logs.some((l) => /reload: TLS certificate loaded/.test(l.msg)), 5000));
    const after = await servedCN(g.port);
    assert.notEqual(after, before, 'new connections get the new certificate');
    assert.equal(after, 'localhost-2');
    assert.equal((await hit()).status, 200, 'the open connection still works');
    // A broken certificate on the next reload refuses the whole reload:
    // the current certificate (and everything else) stays.
    writeFileSync(join(live, 'server.crt'), 'not a certificate');
    g.proc.kill('SIGHUP');
    assert.ok(await waitFor(() => g.logs.some((l) => /reload: the TLS certificate, key or client CA does not load; keeping the running configuration/.test(l.msg)), 5000));
    assert.equal(await servedCN(g.port), 'localhost-2');
    await agent.close();
  } finally {
    await g.stop();
  }
});

/**
 * A client certificate by the test CA (SAN URI spiffe://test.example/agent/s)
 * that expires `secs` seconds from now: `openssl ca` sets an exact
 * notAfter, which `x509 -days` cannot.
 */
function shortLivedClient(secs) {
  const d = join(dir, `short-${Date.now()}`);
  const cnf = [
    '[ca]', 'default_ca = c', '[c]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial',
    'default_md = sha256', 'policy = p', 'unique_subject = no', '[p]', 'commonName = supplied', '[x]',
    'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = clientAuth',
    'subjectAltName = URI:spiffe://test.example/agent/s', '',
  ].join('\n');
  const sh = [
    'set -e', 'mkdir -p "$D" && cd "$D"', 'touch index.txt && echo 1000 > serial', 'printf "%s" "$CNF" > ca.cnf',
    'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out short.key 2>/dev/null',
    'openssl req -new -key short.key -subj /CN=agent-s -out short.csr 2>/dev/null',
    'openssl ca -batch -config ca.cnf -extensions x -cert "$P/ca.crt" -keyfile "$P/ca.key" -in short.csr -out short.crt ' +
      '-startdate "$(date -u -d "-1 minute" +%Y%m%d%H%M%SZ)" -enddate "$(date -u -d "+$S seconds" +%Y%m%d%H%M%SZ)" 2>&1',
  ].join('\n');
  const r = spawnSync('bash', ['-c', sh], { encoding: 'utf8', env: { ...process.env, D: d, P: pki, S: String(secs), CNF: cnf } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return { cert: readFileSync(join(d, 'short.crt')), key: readFileSync(join(d, 'short.key')) };
}

test('a client certificate that expires while its connection stays open: the held stream ends, the next request is not its principal', async () => {
  const g = await startGateway({
    tls: { cert: file('server.crt'), key: file('server.key'), client_ca: file('ca.crt'), client_auth: 'optional' },
    auth: { mtls: { identities: [{ match: 'spiffe://test.example/agent/*', principal: 'agent-a', roles: ['reader'] }] } },
    limits: { read_timeout: '2s', idle_timeout: '60s' }, // a keepalive, and with it the check, every second
    policy: { roles: { reader: { tools: [{ match: 'up__echo', access: 'all' }] } } },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const url = `https://localhost:${g.port}/mcp`;
  const agents = [];
  try {
    const c = shortLivedClient(6);
    const agent = () => {
      const a = new Agent({ connect: { ca: pem('ca.crt'), ...c }, keepAliveTimeout: 60000, keepAliveMaxTimeout: 60000, connections: 1 });
      agents.push(a);
      return a;
    };
    const posts = agent();
    const post = (body, headers = {}) => ufetch(url, { method: 'POST', headers: { ...jsonHeaders, ...headers }, body: JSON.stringify(body), dispatcher: posts });
    const init = await post(JSON.parse(initBody));
    assert.equal(init.status, 200);
    const sid = init.headers.get('mcp-session-id');
    await init.text();
    const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const echo = (id) => post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'hi' } } }, h);
    const ok = await echo(2);
    assert.equal(ok.status, 200, 'served while the certificate is in date');
    await ok.text();
    // The GET stream on a connection of its own.
    const ctrl = new AbortController();
    const get = await ufetch(url, { method: 'GET', headers: { accept: 'text/event-stream', ...h }, dispatcher: agent(), signal: ctrl.signal });
    assert.equal(get.status, 200);
    const ended = (async () => {
      try {
        for await (const _ of get.body) { /* keepalives */ }
      } catch { /* reset */ }
      return Date.now();
    })();
    // Meanwhile the kept-alive POST connection, its handshake long
    // verified, is used every half second (an idle one would be closed):
    // 200 while the certificate is in date, then 401 (no other
    // credential). A new handshake would not complete at all, so a status
    // proves the connection was reused.
    const statuses = [];
    for (let i = 4; i < 40 && statuses.at(-1) !== 401; i++) {
      const r = await echo(i).catch((e) => { throw new Error(`request ${i} after ${statuses.join(',')}: ${e.cause}`); });
      statuses.push(r.status);
      await r.text();
      await new Promise((res) => setTimeout(res, 500));
    }
    assert.equal(statuses.at(-1), 401, statuses.join(','));
    assert.ok(statuses.every((x, i) => x === (i === statuses.length - 1 ? 401 : 200)), statuses.join(','));
    const t = await Promise.race([ended, new Promise((r) => setTimeout(() => r(null), 10000))]);
    assert.ok(t !== null, 'the GET stream ended once the certificate expired');
    await g.waitForLog((l) => /a stream of principal 'agent-a' ended: mtls.expired/.test(l.msg ?? ''), { timeoutMs: 5000 });
    // Refused as a failed credential (counted, logged, recorded), not
    // passed as "no credential".
    assert.ok(g.logs.some((l) => l.msg === 'authentication refused' && l.reason === 'mtls.expired'), 'logged as mtls.expired');
    ctrl.abort();
  } finally {
    for (const a of agents) await a.destroy().catch(() => {});
    await g.stop();
  }
});

test('a reload that changes a held stream\'s certificate mapping: new roles are told, another principal ends it', async () => {
  const mtls = (principal, roles = ['reader']) => ({ mtls: { identities: [{ match: 'spiffe://test.example/agent/*', principal, roles }] } });
  const g = await startGateway({
    tls: { cert: file('server.crt'), key: file('server.key'), client_ca: file('ca.crt'), client_auth: 'optional' },
    auth: mtls('agent-a'),
    limits: { read_timeout: '2s' },
    policy: { roles: { reader: { tools: [{ match: 'up__echo', access: 'all' }] } } },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const url = `https://localhost:${g.port}/mcp`;
  const agent = new Agent({ connect: { ca: pem('ca.crt'), cert: pem('client.crt'), key: pem('client.key') } });
  try {
    const init = await ufetch(url, { method: 'POST', headers: jsonHeaders, body: initBody, dispatcher: agent });
    assert.equal(init.status, 200);
    await init.text();
    const h = { 'mcp-session-id': init.headers.get('mcp-session-id'), 'mcp-protocol-version': '2025-11-25' };
    const get = await ufetch(url, { method: 'GET', headers: { accept: 'text/event-stream', ...h }, dispatcher: agent });
    assert.equal(get.status, 200);
    let text = '';
    const ended = (async () => {
      try {
        for await (const chunk of get.body) text += Buffer.from(chunk).toString();
      } catch { /* reset */ }
      return true;
    })();
    assert.equal(await Promise.race([ended, new Promise((r) => setTimeout(() => r(false), 2500))]), false, 'open while the mapping holds');
    const reload = async (auth) => {
      writeFileSync(g.configPath, toYaml({ ...g.config, auth }));
      const from = g.logs.length;
      g.proc.kill('SIGHUP');
      await g.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg ?? ''), { from });
    };
    // The same principal with no role: up__echo leaves its tool list, and
    // the keepalive's check tells the stream so; the stream stays.
    await reload(mtls('agent-a', []));
    assert.ok(await waitFor(() => text.includes('notifications/tools/list_changed'), 5000), text);
    assert.equal(await Promise.race([ended, new Promise((r) => setTimeout(() => r(false), 1500))]), false, 'still open');
    await reload(mtls('agent-z'));
    assert.equal(await Promise.race([ended, new Promise((r) => setTimeout(() => r(false), 8000))]), true, 'the stream ended');
    await g.waitForLog((l) => /a stream of principal 'agent-a' ended: mtls.changed/.test(l.msg ?? ''), { timeoutMs: 5000 });
  } finally {
    await agent.destroy().catch(() => {});
    await g.stop();
  }
});

test('testssl.sh finds no old protocol, weak cipher, renegotiation or vulnerability', { timeout: 900000 }, () => {
  const out = join(ROOT, 'build', 'tls-gateway');
  const r = spawnSync('bash', [join(ROOT, 'tests/tls/testssl.sh'), `localhost:${gw.port}`, out, file('ca.crt')], {
    encoding: 'utf8',
    timeout: 800000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.slice(-3000));
});
