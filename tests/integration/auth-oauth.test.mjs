// OAuth 2.1 resource server end to end: the test is its own issuer (keys and
// JWKS made here, the JWKS served over loopback HTTP), the gateway fetches
// the keys, and every token an attacker would try is refused before
// anything reaches the upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as HttpV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from '@modelcontextprotocol/client';
import { startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, post } from '../lib/mcp.mjs';
import { waitFor } from '../lib/wait.mjs';
import { openStream } from '../lib/stream.mjs';
import { makeIssuer, makeToken, claims } from '../lib/jwt.mjs';

const ISS = 'https://issuer.test';
const AUD = 'https://mcp.test/mcp';
let issuer, jwksServer, jwksHits = 0, gw;

before(async () => {
  issuer = makeIssuer();
  jwksServer = createServer((req, res) => {
    if (req.url === '/jwks.json') {
      jwksHits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(issuer.jwks));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => jwksServer.listen(0, '127.0.0.1', r));
  gw = await startGateway({
    auth: {
      oauth: {
        issuer: ISS,
        jwks_uri: `http://127.0.0.1:${jwksServer.address().port}/jwks.json`,
        resource: AUD,
        scopes_supported: ['mcp:read', 'mcp:write'],
        required_scopes: ['mcp:read'],
        scope_roles: { 'mcp:read': ['reader'], 'mcp:write': ['writer'] },
      },
      failed_auth: { max_failures: 1000, window: '60s' },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  assert.ok(await waitFor(() => jwksHits > 0, 5000), 'the JWKS was fetched at start');
});
after(async () => {
  await gw?.stop();
  jwksServer?.close();
});

const good = (extra = {}, opts = {}) => makeToken(issuer, claims(ISS, AUD, extra), opts);
const bearer = (t) => ({ authorization: `Bearer ${t}` });
const init = (headers) =>
  post(gw.url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, headers);

async function upstreamCalls() {
  const t = good();
  const s = await legacyInit(gw.url, { headers: bearer(t) });
  const r = await post(gw.url, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'up__calls', arguments: {} } }, s.headers);
  return Number(r.response.result.content[0].text);
}

test('no token: 401 with resource_metadata and scope; the metadata document is served', async () => {
  const r = await init({});
  assert.equal(r.status, 401);
  const c = r.headers.get('www-authenticate');
  assert.match(c, /^Bearer /);
  assert.match(c, /resource_metadata="https:\/\/mcp\.test\/\.well-known\/oauth-protected-resource\/mcp"/);
  assert.match(c, /scope="mcp:read"/);
  for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
    const m = await fetch(`${gw.baseUrl}${path}`);
    assert.equal(m.status, 200, path);
    const doc = await m.json();
    assert.equal(doc.resource, AUD);
    assert.deepEqual(doc.authorization_servers, [ISS]);
    assert.deepEqual(doc.scopes_supported, ['mcp:read', 'mcp:write']);
    assert.deepEqual(doc.bearer_methods_supported, ['header']);
  }
});

test('valid RS256, PS256, ES256 and EdDSA tokens are accepted', async () => {
  for (const [what, opts] of [['RS256', {}], ['PS256', { ps256: true }], ['ES256', { key: 'ec' }], ['EdDSA', { key: 'ed' }]]) {
    const r = await init(bearer(good({}, opts)));
    assert.equal(r.status, 200, what);
  }
});

test('SDK v1 and v2 clients connect with a JWT', async () => {
  const t = good();
  const v1 = new ClientV1({ name: 't', version: '1' });
  await v1.connect(new HttpV1(new URL(gw.url), { requestInit: { headers: bearer(t) } }));
  assert.equal((await v1.callTool({ name: 'up__echo', arguments: { text: 'jwt v1' } })).content[0].text, 'jwt v1');
  await v1.close();
  const v2 = new ClientV2({ name: 't', version: '1' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await v2.connect(new HttpV2(new URL(gw.url), { requestInit: { headers: bearer(t) } }));
  assert.equal((await v2.callTool({ name: 'up__echo', arguments: { text: 'jwt v2' } })).content[0].text, 'jwt v2');
  await v2.close();
});

test('an unknown kid makes the gateway refetch the JWKS (rate-limited), then the new key works', async () => {
  const fresh = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  issuer.keys.rot = { kid: 'ec-2', alg: 'ES256', ...fresh };
  issuer.jwks.keys.push({ ...fresh.publicKey.export({ format: 'jwk' }), kid: 'ec-2', use: 'sig' });
  const t = good({}, { key: 'rot' });
  const hits = jwksHits;
  const first = await init(bearer(t));
  assert.equal(first.status, 401, 'not known yet: refused, and a refetch is scheduled');
  assert.ok(await waitFor(() => jwksHits > hits, 5000), 'the JWKS was fetched again');
  let status = 0;
  for (let i = 0; i < 20 && status !== 200; i++) {
    status = (await init(bearer(t))).status;
    if (status !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 200, 'the rotated-in key is trusted after the refetch');
  // A flood of unknown kids does not make the gateway hammer the issuer.
  const before = jwksHits;
  for (let i = 0; i < 20; i++) await init(bearer(good({}, { kid: `random-${i}` })));
  assert.ok(jwksHits - before <= 1, `refetches during the flood: ${jwksHits - before}`);
});

test('forged, misdirected, stale and tampered tokens are refused; nothing reaches the upstream', async () => {
  const now = Math.floor(Date.now() / 1000);
  const rsaPublicPem = issuer.keys.rsa.publicKey.export({ format: 'pem', type: 'spki' });
  const valid = good();
  const [h, p, s] = valid.split('.');
  const tamperedPayload = Buffer.from(JSON.stringify({ ...claims(ISS, AUD), sub: 'mallory' })).toString('base64url');
  const cases = {
    'alg none': makeToken(issuer, claims(ISS, AUD), { alg: 'none' }),
    'HS256 signed with the public key': makeToken(issuer, claims(ISS, AUD), { alg: 'HS256', hmacKey: rsaPublicPem }),
    'wrong aud': good({ aud: 'https://other.test/mcp' }),
    'wrong iss': makeToken(issuer, claims('https://evil.test', AUD)),
    expired: good({ exp: now - 3600, iat: now - 7200, nbf: now - 7200 }),
    'not yet valid': good({ nbf: now + 3600 }),
    'unknown kid': good({}, { kid: 'nobody' }),
    'tampered payload': `${h}.${tamperedPayload}.${s}`,
    'tampered signature': `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`,
    'two segments': `${h}.${p}`,
    'foreign key (not in the JWKS)': (() => {
      const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return makeToken({ keys: { rsa: { ...issuer.keys.rsa, privateKey: other.privateKey } } }, claims(ISS, AUD));
    })(),
  };
  const before = await upstreamCalls();
  for (const [what, t] of Object.entries(cases)) {
    const r = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text: what } } }, bearer(t));
    assert.equal(r.status, 401, what);
    assert.match(r.headers.get('www-authenticate'), /error="invalid_token"/, what);
  }
  // A valid token, but in the query string.
  const q = await fetch(`${gw.url}?access_token=${valid}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'q' } } }),
  });
  assert.equal(q.status, 401);
  assert.equal(await upstreamCalls(), before + 1, 'only the counting call itself reached the upstream');
});

test('a token without the required scope gets 403 insufficient_scope', async () => {
  const r = await init(bearer(good({ scope: 'mcp:write' })));
  assert.equal(r.status, 403);
  const c = r.headers.get('www-authenticate');
  assert.match(c, /error="insufficient_scope"/);
  assert.match(c, /scope="mcp:read"/);
  assert.match(c, /resource_metadata="/);
});

test('the upstream never sees the token', async () => {
  const t = good();
  const s = await legacyInit(gw.url, { headers: bearer(t) });
  const env = await post(gw.url, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'up__env', arguments: {} } }, s.headers);
  const meta = await post(gw.url, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'up__meta', arguments: {} } }, s.headers);
  const sig = t.split('.')[2];
  for (const r of [env, meta]) {
    const text = JSON.stringify(r.response.result);
    assert.ok(!text.includes(sig) && !text.includes(t.split('.')[1]), 'no token parts upstream');
    assert.ok(!/authorization|bearer/i.test(text));
  }
  assert.ok(!gw.stderr.includes(sig), 'and not in the gateway log');
});

test('scopes map to roles: a token sees and calls only what its scopes\' roles grant', async () => {
  const g = await startGateway({
    auth: {
      oauth: {
        issuer: ISS,
        jwks_uri: `http://127.0.0.1:${jwksServer.address().port}/jwks.json`,
        resource: AUD,
        required_scopes: ['mcp:read'],
        scope_roles: { 'mcp:read': ['reader'], 'mcp:write': ['writer'] },
      },
    },
    policy: {
      roles: {
        reader: { tools: [{ match: 'up__echo', access: ['read', 'open_world'] }] },
        writer: { tools: [{ match: 'up__*', access: 'all' }] },
      },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const names = async (scope) => {
      const s = await legacyInit(g.url, { headers: bearer(good({ scope })) });
      const r = await s.request(2, 'tools/list', {});
      const call = await s.request(3, 'tools/call', { name: 'up__add', arguments: { a: 1, b: 2 } });
      return { tools: r.response.result.tools.map((t) => t.name), call: call.response };
    };
    const ro = await names('mcp:read');
    assert.deepEqual(ro.tools, ['up__echo']);
    assert.equal(ro.call.error?.code, -32602, 'up__add is hidden from mcp:read');
    const rw = await names('mcp:read mcp:write');
    assert.ok(rw.tools.includes('up__add') && rw.tools.length > 5);
    assert.equal(rw.call.result.content[0].text, '3');
  } finally {
    await g.stop();
  }
});

// Names from two authorities are two callers: a JWT whose sub equals an API
// key's principal ("alice") does not get to use that key's session.
test('a JWT sub equal to an API key principal is another caller: the key\'s session is 404 to it', async () => {
  const d = mkdtempSync(join(tmpdir(), 'portcullis-oauth-keys-'));
  writeFileSync(join(d, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  const keys = { store: join(d, 'keys.db'), pepper: `\${file:${join(d, 'pepper')}}` };
  writeFileSync(join(d, 'cli.yaml'), toYaml({ auth: { api_keys: keys } }));
  const made = spawnSync(PORTCULLIS_BIN, ['keys', 'create', '--principal', 'alice', '--json', '-c', join(d, 'cli.yaml')], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const key = JSON.parse(made.stdout).key;
  const g = await startGateway({
    auth: {
      api_keys: keys,
      oauth: { issuer: ISS, jwks_uri: `http://127.0.0.1:${jwksServer.address().port}/jwks.json`, resource: AUD,
        scopes_supported: ['mcp:read'], scope_roles: { 'mcp:read': ['reader'] } },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const s = await legacyInit(g.url, { headers: bearer(key) });
    const mine = await post(g.url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...s.headers, ...bearer(key) });
    assert.equal(mine.status, 200, mine.text);
    const tok = good({ sub: 'alice' });
    const other = await post(g.url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { ...s.headers, ...bearer(tok) });
    assert.equal(other.status, 404, other.text);
  } finally {
    await g.stop();
    rmSync(d, { recursive: true, force: true });
  }
});

test('an issuer unreachable so far: a valid token gets 503 with Retry-After, is not "invalid" and does not throttle its caller', async () => {
  // A port nobody listens on (taken, then released).
  const probe = createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const dead = probe.address().port;
  await new Promise((r) => probe.close(r));
  const g = await startGateway({
    auth: {
      oauth: { issuer: ISS, jwks_uri: `http://127.0.0.1:${dead}/jwks.json`, resource: AUD },
      failed_auth: { max_failures: 3, window: '60s' },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  }, { waitReady: false });
  try {
    for (let i = 0; i < 6; i++) {
      const r = await post(g.url, { jsonrpc: '2.0', id: i, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, bearer(good()));
      assert.equal(r.status, 503, `attempt ${i}: ${r.text}`);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.equal(JSON.parse(r.text).error.data.reason, 'auth.unavailable');
    }
  } finally {
    await g.stop();
  }
});

test('a stream held open ends when its token expires', async () => {
  const g = await startGateway({
    auth: {
      oauth: { issuer: ISS, jwks_uri: `http://127.0.0.1:${jwksServer.address().port}/jwks.json`, resource: AUD, leeway: '0s' },
      failed_auth: { max_failures: 1000, window: '60s' },
    },
    limits: { read_timeout: '2s' }, // a keepalive, and a check, every second
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const exp = Math.floor(Date.now() / 1000) + 3;
    const t = good({ exp });
    const s = await legacyInit(g.url, { headers: bearer(t) });
    const get = await openStream(g.url, { method: 'GET', headers: s.headers });
    assert.equal(get.status, 200);
    assert.ok(await get.closed(10000), 'the stream ended');
    assert.ok(Date.now() / 1000 >= exp, 'not before the token expired');
    await g.waitForLog((l) => /a stream of principal 'alice' ended: jwt.expired/.test(l.msg ?? ''), { timeoutMs: 5000 });
  } finally {
    await g.stop();
  }
});
