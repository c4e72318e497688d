// Issue 5 end to end: rate limits, budgets, breakers and concurrency caps
// in the real binary, with API keys made by `portcullis keys` and the
// mini_upstream fixture (whose `calls` tool counts the tools/call requests
// that reached it, so a refusal can be proven to have stopped at the
// gateway). Rates are per minute where the test can afford it, so that a
// slow, shared machine cannot let a second slip between two calls and
// change the answer; Retry-After is checked to the second (with the one
// second that may pass between the calls and the check).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { withGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, post, modernRequest } from '../lib/mcp.mjs';
import { readAuditRecords } from '../lib/audit.mjs';

let dir, auth, cliCfg;

function createKey(principal, extra = []) {
  const r = spawnSync(PORTCULLIS_BIN, ['keys', 'create', '--principal', principal, '--json', ...extra, '-c', cliCfg], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`keys create: exit ${r.status}\n${r.stderr}`);
  return JSON.parse(r.stdout);
}
const bearer = (k) => ({ authorization: `Bearer ${k.key}` });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const upstreams = [{ name: 'up', command: upstreamCommands.mini() }];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-limits-'));
  writeFileSync(join(dir, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  auth = { api_keys: { store: join(dir, 'keys.db'), pepper: `\${file:${join(dir, 'pepper')}}` } };
  cliCfg = join(dir, 'cli.yaml');
  writeFileSync(cliCfg, toYaml({ auth }));
  createKey('bootstrap'); // the store exists before a gateway opens it
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A modern (stateless) tools/call carrying key k. */
async function call(gw, k, name, args = {}, id = 1) {
  const headers = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': name, ...bearer(k) };
  return post(gw.url, {
    jsonrpc: '2.0', id, method: 'tools/call',
    params: { name, arguments: args, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } },
  }, headers);
}

/** tools/call requests that reached the upstream so far (the call itself included). */
async function upstreamCalls(gw, k) {
  const r = await call(gw, k, 'up__calls', {}, 999);
  assert.equal(r.status, 200, r.text);
  return Number(r.response.result.content[0].text);
}

function assertRefused(r, { status = 429, reason, limit, retryAfter }) {
  assert.equal(r.status, status, r.text);
  const e = r.response?.error;
  assert.ok(e, r.text);
  assert.equal(e.code, -32009);
  assert.equal(e.data.reason, reason);
  if (limit !== undefined) assert.equal(e.data.limit, limit);
  const ra = Number(r.headers.get('retry-after'));
  if (retryAfter !== undefined) {
    const [lo, hi] = Array.isArray(retryAfter) ? retryAfter : [retryAfter, retryAfter];
    assert.ok(ra >= lo && ra <= hi, `Retry-After ${ra} not in [${lo}, ${hi}]`);
    assert.equal(e.data.retryAfter, ra, 'the body and the header agree');
  }
  // Never internal detail: no path, no errno.
  assert.doesNotMatch(r.text, /\/tmp|errno|sqlite/i);
}

test('per-key rate limit: the burst, then refusals with exact Retry-After and RateLimit headers, in both eras; other keys unaffected', async () => {
  const a = createKey('rate-a');
  const b = createKey('rate-b');
  await withGateway({ auth, upstreams, rate_limits: [{ id: 'calls-per-minute', scope: 'key', rate: '2/minute' }] }, async (gw) => {
    // 2/minute: spacing T = 30 s, burst 2. Two pass at once.
    const r1 = await call(gw, a, 'up__echo', { text: 'x' });
    assert.equal(r1.status, 200, r1.text);
    assert.equal(r1.headers.get('ratelimit-limit'), '2');
    assert.equal(r1.headers.get('ratelimit-remaining'), '1');
    const r2 = await call(gw, a, 'up__echo', { text: 'x' });
    assert.equal(r2.status, 200);
    assert.equal(r2.headers.get('ratelimit-remaining'), '0');
    // The third waits one spacing: 30 s (29 if a second went by).
    const r3 = await call(gw, a, 'up__echo', { text: 'x' });
    assertRefused(r3, { reason: 'limit.rate', limit: 'calls-per-minute', retryAfter: [29, 30] });
    assert.equal(r3.headers.get('ratelimit-limit'), '2');
    assert.equal(r3.headers.get('ratelimit-remaining'), '0');
    assert.ok(Number(r3.headers.get('ratelimit-reset')) >= 59, 'the whole minute to be whole again');

    // The legacy era, same key: the same answer over a session.
    const s = await legacyInit(gw.url, { headers: bearer(a) });
    const l = await post(gw.url, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'x' } } }, s.headers);
    assertRefused(l, { reason: 'limit.rate', limit: 'calls-per-minute', retryAfter: [28, 30] });
    // Other methods are not tool calls and are not counted.
    const list = await s.request(8, 'tools/list');
    assert.equal(list.status, 200);

    // Key B has its own allowance.
    const sb = await legacyInit(gw.url, { headers: bearer(b) });
    const rb = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'b' } } }, sb.headers);
    assert.equal(rb.status, 200, rb.text);
    assert.equal(rb.response.result.content[0].text, 'b');
    assert.ok(gw.logs.some((x) => x.msg === 'limit refused a call' && x.reason === 'limit.rate' && x.key === a.id));
  });
});

test('a key limit counts resource reads, prompts and completions too: a key held to 3 a minute cannot read without limit', async () => {
  const a = createKey('read-a');
  await withGateway({ auth, upstreams, rate_limits: [{ id: 'key-minute', scope: 'key', rate: '3/minute' }] }, async (gw) => {
    const s = await legacyInit(gw.url, { headers: bearer(a) });
    const rr = await s.request(2, 'resources/read', { uri: 'up+mini://hello' });
    assert.equal(rr.status, 200, rr.text);
    assert.equal(rr.response.result.contents[0].text, 'hello');
    assert.equal(rr.headers.get('ratelimit-remaining'), '2', 'the read took a share');
    const pg = await s.request(3, 'prompts/get', { name: 'up__greet', arguments: { name: 'x' } });
    assert.equal(pg.status, 200, pg.text);
    assert.equal(pg.headers.get('ratelimit-remaining'), '1');
    const cc = await s.request(4, 'completion/complete', { ref: { type: 'ref/prompt', name: 'up__greet' }, argument: { name: 'name', value: 'x' } });
    assert.equal(cc.headers.get('ratelimit-remaining'), '0', cc.text);
    // The allowance is gone for every counted method, in both eras.
    const r4 = await s.request(5, 'resources/read', { uri: 'up+mini://hello' });
    assertRefused(r4, { reason: 'limit.rate', limit: 'key-minute', retryAfter: [18, 20] });
    const t4 = await post(gw.url, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'x' } } }, s.headers);
    assertRefused(t4, { reason: 'limit.rate', limit: 'key-minute' });
    const m4 = await post(gw.url, {
      jsonrpc: '2.0', id: 7, method: 'resources/read',
      params: { uri: 'up+mini://hello', _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } },
    }, { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'resources/read', 'mcp-name': 'up+mini://hello', ...bearer(a) });
    assertRefused(m4, { reason: 'limit.rate', limit: 'key-minute' });
    // Lists are the gateway's own answers: not counted.
    const list = await s.request(8, 'resources/list');
    assert.equal(list.status, 200, list.text);
    assert.equal(list.headers.get('ratelimit-limit'), null);
  });
});

test('per-tool limit: 3 per 6 s with burst 3 passes three, refuses the fourth for one spacing (2 s), then passes; other tools unaffected', async () => {
  const a = createKey('tool-a');
  const b = createKey('tool-b');
  await withGateway({ auth, upstreams, rate_limits: [{ id: 'add-limit', scope: 'tool', match: 'up__add', rate: '3/6s', burst: 3 }] }, async (gw) => {
    for (let i = 0; i < 3; i++) {
      const r = await call(gw, i === 1 ? b : a, 'up__add', { a: 1, b: i });
      assert.equal(r.status, 200, r.text);
    }
    // A tool limit counts every caller together: B's call used a share.
    const r4 = await call(gw, b, 'up__add', { a: 1, b: 2 });
    // Spacing 2 s: 2, or 1 if a second went by during the three calls.
    assertRefused(r4, { reason: 'limit.rate', limit: 'add-limit', retryAfter: [1, 2] });
    const echo = await call(gw, a, 'up__echo', { text: 'free' });
    assert.equal(echo.status, 200, 'another tool is not limited');
    assert.equal(echo.headers.get('ratelimit-limit'), null, 'no limit applied, no headers');
    await sleep(Number(r4.headers.get('retry-after')) * 1000);
    const r5 = await call(gw, b, 'up__add', { a: 2, b: 2 });
    assert.equal(r5.status, 200, r5.text);
  });
});

test('made-up tool names are not counted by tool limits: they cannot fill the limit table', async () => {
  // Every name counted is an entry of the bounded limit table for a whole
  // spacing interval (an hour here); names that are no tool, answered
  // "Unknown tool", used to take one each until the table was full and
  // every new caller was refused.
  const a = createKey('made-up');
  await withGateway({ auth, upstreams, rate_limits: [{ id: 'per-key-tool', scope: 'key_tool', rate: '1/1h' }] }, async (gw) => {
    for (let i = 0; i < 3; i++) {
      const r = await call(gw, a, 'up__no_such_tool', {}, i);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.response.error?.message, 'Unknown tool', r.text);
    }
    // A real tool is counted: once an hour.
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200);
    assertRefused(await call(gw, a, 'up__echo', { text: 'y' }), { reason: 'limit.rate', limit: 'per-key-tool' });
  });
});

test('a spend budget refuses exactly the call that would exceed it, before the upstream; cheaper calls still fit', async () => {
  const a = createKey('budget-a');
  const b = createKey('budget-b');
  await withGateway({
    auth, upstreams,
    budgets: [{ id: 'daily', scope: 'key', period: 'day', amount: 10 }],
    tool_costs: { up__echo: 3, 'up__ca*': 0 },
  }, async (gw) => {
    const base = await upstreamCalls(gw, a); // costs 0
    for (let i = 0; i < 3; i++) assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200);
    // Spent 9 of 10: another 3 would exceed.
    const r = await call(gw, a, 'up__echo', { text: 'x' });
    const untilMidnight = Math.ceil((Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() + 1) - Date.now()) / 1000);
    assertRefused(r, { reason: 'limit.budget', limit: 'daily', retryAfter: [untilMidnight - 2, untilMidnight + 1] });
    assert.equal(await upstreamCalls(gw, a), base + 4, 'three echoes and this count reached the upstream; the refused one did not');
    // up__add costs 1 (the default): 10 of 10 is allowed.
    assert.equal((await call(gw, a, 'up__add', { a: 1, b: 1 })).status, 200);
    assertRefused(await call(gw, a, 'up__add', { a: 1, b: 1 }), { reason: 'limit.budget', limit: 'daily' });
    // A call refused by validation never reaches the forward, and costs nothing.
    const bad = await call(gw, b, 'up__add', { a: 'not a number' });
    assert.equal(bad.status, 200);
    assert.equal(bad.response.result.isError, true);
    for (let i = 0; i < 3; i++) assert.equal((await call(gw, b, 'up__echo', { text: 'x' })).status, 200, 'B still has 10');
    assert.equal((await call(gw, b, 'up__add', { a: 1, b: 1 })).status, 200);
  });
});

test('a call that never reaches its upstream (none running) is not charged to the budget', async () => {
  const a = createKey('budget-unsent');
  // A restart backoff long enough for three calls on a slow machine.
  const slow = [{ ...upstreams[0], restart_backoff: { min: '2s', max: '2s' } }];
  await withGateway({
    auth, upstreams: slow,
    budgets: [{ id: 'daily', scope: 'key', period: 'day', amount: 3 }],
    tool_costs: { 'up__ca*': 0, up__crash: 0 },
  }, async (gw) => {
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200); // 1 of 3
    // `crash` ends the upstream; until the supervisor restarts it (2 s
    // backoff) a call finds no upstream and is answered at once.
    const crash = await call(gw, a, 'up__crash');
    assert.equal(crash.response?.error?.code, -32004, crash.text);
    let unsent = 0;
    for (let i = 0; i < 3; i++) {
      const r = await call(gw, a, 'up__echo', { text: 'x' });
      assert.equal(r.response?.error?.code, -32004, r.text);
      assert.match(r.response.error.message, /unavailable/i);
      unsent++;
    }
    assert.equal(unsent, 3);
    await sleep(2600); // restarted
    // Charged for one call so far: two more fit, the next is refused.
    for (let i = 0; i < 2; i++) {
      const r = await call(gw, a, 'up__echo', { text: 'x' });
      assert.equal(r.status, 200, r.text);
      assert.ok(r.response.result, r.text);
    }
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }), { reason: 'limit.budget', limit: 'daily' });
  });
});

test('upstream breaker: opens after N failures with a fast 503 and Retry-After, half-opens after the cooldown, and the probe closes it', async () => {
  const a = createKey('breaker-up');
  await withGateway({ auth, upstreams, breakers: { upstream: { threshold: 2, cooldown: '2s' } } }, async (gw) => {
    // `crash` makes the upstream exit mid-call: an upstream failure.
    for (let i = 0; i < 2; i++) {
      const r = await call(gw, a, 'up__crash');
      assert.equal(r.response?.error?.code, -32004, r.text);
      await sleep(400); // the supervisor restarts it (backoff 250 ms)
    }
    const t0 = Date.now();
    const open = await call(gw, a, 'up__echo', { text: 'x' });
    assertRefused(open, { status: 503, reason: 'limit.breaker.upstream', limit: 'breaker:up', retryAfter: [1, 2] });
    await sleep(Math.max(0, Number(open.headers.get('retry-after')) * 1000 - (Date.now() - t0)) + 100);
    // Half-open: one probe goes through; its success closes the breaker.
    const probe = await call(gw, a, 'up__echo', { text: 'probe' });
    assert.equal(probe.status, 200, probe.text);
    assert.equal(probe.response.result.content[0].text, 'probe');
    assert.equal((await call(gw, a, 'up__echo', { text: 'again' })).status, 200);
    // A tool's own error (isError) is an answer, not an upstream failure.
    for (let i = 0; i < 3; i++) {
      const r = await call(gw, a, 'up__add', { a: 'x' });
      assert.equal(r.response.result.isError, true);
    }
    assert.equal((await call(gw, a, 'up__echo', { text: 'ok' })).status, 200);
  });
});

test('key breaker: N failing calls in a row pause that key only, then a probe after the cooldown', async () => {
  const a = createKey('breaker-key-a');
  const b = createKey('breaker-key-b');
  await withGateway({ auth, upstreams, breakers: { key: { threshold: 3, cooldown: '2s' } } }, async (gw) => {
    // A success in between resets the count: consecutive failures only.
    await call(gw, a, 'up__add', { a: 'x' });
    await call(gw, a, 'up__add', { a: 'x' });
    assert.equal((await call(gw, a, 'up__echo', { text: 'ok' })).status, 200);
    for (let i = 0; i < 3; i++) {
      const r = await call(gw, a, 'up__add', { a: 'x' });
      assert.equal(r.response.result.isError, true, r.text);
    }
    const t0 = Date.now();
    const open = await call(gw, a, 'up__echo', { text: 'x' });
    assertRefused(open, { status: 429, reason: 'limit.breaker.key', limit: 'breaker:key', retryAfter: [1, 2] });
    assert.equal((await call(gw, b, 'up__echo', { text: 'b' })).status, 200, 'another key is not paused');
    await sleep(Math.max(0, Number(open.headers.get('retry-after')) * 1000 - (Date.now() - t0)) + 100);
    assert.equal((await call(gw, a, 'up__echo', { text: 'probe' })).status, 200);
    assert.equal((await call(gw, a, 'up__echo', { text: 'closed' })).status, 200);
  });
});

test('concurrency caps: per key 429, per upstream 503, slots given back when calls end', async () => {
  const a = createKey('conc-a');
  const b = createKey('conc-b');
  await withGateway({ auth, upstreams, concurrency: { per_key: 1, per_upstream: 2 } }, async (gw) => {
    const slow = call(gw, a, 'up__sleep', { ms: 3000 }, 1);
    await sleep(500);
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }, 2), { status: 429, reason: 'limit.concurrency.key', limit: 'concurrency:key', retryAfter: 1 });
    const slowB = call(gw, b, 'up__sleep', { ms: 3000 }, 3);
    await sleep(500);
    const c = createKey('conc-c');
    assertRefused(await call(gw, c, 'up__echo', { text: 'x' }, 4), { status: 503, reason: 'limit.concurrency.upstream', limit: 'concurrency:up', retryAfter: 1 });
    assert.equal((await slow).status, 200);
    assert.equal((await slowB).status, 200);
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' }, 5)).status, 200);
    assert.equal((await call(gw, c, 'up__echo', { text: 'x' }, 6)).status, 200);
  });
});

test('counters survive a restart: rate and budget state is saved in the key store and restored', async () => {
  const a = createKey('persist-a');
  const cfg = {
    auth, upstreams,
    rate_limits: [{ id: 'per-min', scope: 'key', rate: '2/minute' }, { scope: 'key', rate: '100/hour' }],
    budgets: [{ id: 'daily', scope: 'key', period: 'day', amount: 5 }],
    tool_costs: { up__add: 5 },
  };
  await withGateway(cfg, async (gw) => {
    assert.equal((await call(gw, a, 'up__add', { a: 1, b: 1 })).status, 200);
    // Spent 5 of 5: the budget refuses echo (cost 1), after the rate
    // limit counted it; the third call is refused by the rate limit.
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }), { reason: 'limit.budget', limit: 'daily' });
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }), { reason: 'limit.rate', limit: 'per-min' });
  });
  await withGateway(cfg, async (gw) => {
    assert.ok(gw.logs.some((l) => /saved counter\(s\) restored/.test(l.msg ?? '')));
    const r = await call(gw, a, 'up__echo', { text: 'x' });
    assertRefused(r, { reason: 'limit.rate', limit: 'per-min', retryAfter: [1, 30] });
  });
  // Without the rate limit the budget, spent before the restart, refuses.
  await withGateway({ ...cfg, rate_limits: [] }, async (gw) => {
    assertRefused(await call(gw, a, 'up__add', { a: 1, b: 1 }), { reason: 'limit.budget', limit: 'daily' });
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 429, 'echo costs 1: 5 + 1 > 5');
  });
  // Started without any limit, then given the budget back by SIGHUP:
  // the saved counters are loaded then, not wiped by the first save.
  await withGateway({ auth, upstreams }, async (gw) => {
    writeFileSync(gw.configPath, toYaml({ ...gw.config, budgets: cfg.budgets, tool_costs: cfg.tool_costs }));
    const from = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg), { from });
    assertRefused(await call(gw, a, 'up__add', { a: 1, b: 1 }), { reason: 'limit.budget', limit: 'daily' });
  });
});

test('counters are saved every few seconds: a gateway killed with SIGKILL still remembers them', async () => {
  const a = createKey('persist-kill');
  const cfg = { auth, upstreams, rate_limits: [{ id: 'per-min-k', scope: 'key', rate: '1/minute' }] };
  await withGateway(cfg, async (gw) => {
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200);
    // The periodic snapshot (every 5 s when something was charged).
    await sleep(6000);
    await gw.kill();
  });
  await withGateway(cfg, async (gw) => {
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }), { reason: 'limit.rate', limit: 'per-min-k', retryAfter: [40, 55] });
  });
});

test('SIGHUP: new limits take effect at once; the counter of an id that remains carries over', async () => {
  const a = createKey('reload-a');
  await withGateway({ auth, upstreams }, async (gw) => {
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200);
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200);
    writeFileSync(gw.configPath, toYaml({ ...gw.config, rate_limits: [{ id: 'one', scope: 'key_tool', rate: '1/minute' }] }));
    const from = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg), { from });
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200);
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }), { reason: 'limit.rate', limit: 'one', retryAfter: [59, 60] });
    assert.equal((await call(gw, a, 'up__add', { a: 1, b: 1 })).status, 200, 'key_tool: another tool has its own');
    // The same id, loosened: its counter carries over (a fresh one would
    // let the call through). 2/minute: one spacing (30 s) after the TAT.
    writeFileSync(gw.configPath, toYaml({ ...gw.config, rate_limits: [{ id: 'one', scope: 'key_tool', rate: '2/minute' }] }));
    const from2 = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg), { from: from2 });
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }), { reason: 'limit.rate', limit: 'one', retryAfter: [28, 30] });
  });
});

test('a 2025-03-26 batch: each item is counted; a refused item is its error in the array', async () => {
  const a = createKey('batch-a');
  await withGateway({ auth, upstreams, rate_limits: [{ id: 'one', scope: 'key', rate: '1/minute' }] }, async (gw) => {
    const s = await legacyInit(gw.url, { version: '2025-03-26', headers: bearer(a) });
    const r = await post(gw.url, [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'one' } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'two' } } },
    ], s.headers);
    assert.equal(r.status, 200, r.text);
    const byId = Object.fromEntries(r.messages.map((m) => [m.id, m]));
    assert.equal(byId[1].result.content[0].text, 'one');
    assert.equal(byId[2].error.code, -32009);
    assert.equal(byId[2].error.data.reason, 'limit.rate');
    assert.equal(byId[2].error.data.limit, 'one');
  });
});

test('refusals are audited: decision deny with the reason code', async () => {
  const a = createKey('audit-a');
  const keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const logDir = join(dir, 'audit');
  await withGateway({
    auth, upstreams,
    audit: { dir: logDir, key: `\${file:${keyFile}}` },
    rate_limits: [{ id: 'per-min', scope: 'key', rate: '2/minute' }],
    budgets: [{ id: 'daily', scope: 'key', period: 'day', amount: 1 }],
  }, async (gw) => {
    assert.equal((await call(gw, a, 'up__echo', { text: 'x' })).status, 200);
    assertRefused(await call(gw, a, 'up__echo', { text: 'x' }), { reason: 'limit.budget' });
    const s = await legacyInit(gw.url, { headers: bearer(a) });
    const l = await post(gw.url, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'x' } } }, s.headers);
    assertRefused(l, { reason: 'limit.rate' });
    const s25 = await legacyInit(gw.url, { version: '2025-03-26', headers: bearer(a) });
    const b = await post(gw.url, [{ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'x' } } }], s25.headers);
    assert.equal(b.messages[0].error.data.reason, 'limit.rate');
  });
  const records = readAuditRecords(logDir);
  const denies = records.filter((r) => r.decision === 'deny');
  // A budget is charged where the call leaves for its upstream, so that
  // refusal names the upstream; a rate limit refuses before routing.
  assert.deepEqual(denies.map((r) => [r.reason, r.tool, r.upstream, r.era, r.key_id, r.status]), [
    ['limit.budget', 'up__echo', 'up', 'modern', a.id, 'refused'],
    ['limit.rate', 'up__echo', null, 'legacy', a.id, 'refused'],
    ['limit.rate', 'up__echo', null, 'legacy', a.id, 'refused'], // the batch item
  ], JSON.stringify(records, null, 1));
});
