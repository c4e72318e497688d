// URL constraints with host names, end to end: the real binary resolving
// with glibc's own resolver against a real DNS server started here (the
// gateway runs in a mount namespace whose /etc/resolv.conf names it).
//
// What an attacker would try: a name that resolves to a private address,
// a name with one public and one loopback address, and a name whose DNS
// server never answers, sent to stall the gateway for every other client
// (the lookup used to run on the event loop).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '../lib/gateway.mjs';
import { upstreamCommands } from '../lib/paths.mjs';
import { modernRequest } from '../lib/mcp.mjs';
import { startDns, withResolvConf } from '../lib/dns.mjs';

// Port 53 and a private mount namespace need root; CI runs as root.
const root = process.getuid?.() === 0;
let dir, dns, gw;

const TABLE = {
  'public.test': { A: ['93.184.216.34'] },
  'private.test': { A: ['10.1.2.3'] },
  'mixed.test': { A: ['93.184.216.34'], AAAA: ['::1'] },
  'slow.test': { silent: true },
};

before(async () => {
  if (!root) return;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-dns-'));
  // The resolver waits 8 s for the silent name: longer than the
  // gateway's own 5 s bound, which is what must refuse it.
  dns = await startDns(TABLE, dir, { timeoutS: 8 });
  gw = await startGateway({
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
    policy: {
      default_roles: ['all'],
      roles: { all: { tools: [{ match: '*', access: 'all' }] } },
      constraints: [{ tool: 'up__echo', argument: 'text', url: { schemes: ['http', 'https'] } }],
    },
  }, { wrapper: withResolvConf(dns.resolvConf) });
});

after(async () => {
  await gw?.stop();
  await dns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const echo = (id, text) => modernRequest(gw.url, id, 'tools/call', { name: 'up__echo', arguments: { text } });
const refused = (r) => r.status === 200 && r.response?.result?.isError === true &&
  /policy\.denied_argument/.test(JSON.stringify(r.response.result));
const passed = (r, text) => r.status === 200 && r.response?.result?.isError !== true &&
  JSON.stringify(r.response?.result).includes(text);

test('names are judged by the addresses the real resolver returns', { skip: !root && 'needs root (port 53, unshare)' }, async () => {
  const ok = await echo(1, 'https://public.test/x');
  assert.ok(passed(ok, 'https://public.test/x'), JSON.stringify(ok.response));
  assert.ok(refused(await echo(2, 'http://private.test/')), 'a name resolving to 10/8 is refused');
  assert.ok(refused(await echo(3, 'http://mixed.test/')), 'one loopback address among public ones is refused');
  assert.ok(refused(await echo(4, 'http://nxdomain.test/')), 'a name that does not resolve is refused');
  assert.ok(refused(await echo(5, 'http://localhost/')), '/etc/hosts answers are judged too');
  assert.ok(dns.queries.some((q) => q.name === 'public.test'), 'the gateway asked our server');
});

test('a name whose server never answers stalls nobody, and is refused', { skip: !root && 'needs root (port 53, unshare)' }, async () => {
  const from = gw.logs.length;
  let settled = false;
  const slow = echo(10, 'http://slow.test/').then((r) => {
    settled = true;
    return r;
  });
  // The gateway has the slow call (the server saw the query) before the
  // others go out.
  for (let i = 0; i < 200 && !dns.queries.some((q) => q.name === 'slow.test'); i++)
    await new Promise((r) => setTimeout(r, 25));
  assert.ok(dns.queries.some((q) => q.name === 'slow.test'), 'the lookup started');
  // Other clients, other calls, other names: all answered while the
  // lookup still hangs.
  const plain = await modernRequest(gw.url, 11, 'tools/list', {});
  assert.equal(plain.status, 200);
  assert.ok(passed(await echo(12, 'https://public.test/y'), 'https://public.test/y'));
  assert.ok(refused(await echo(13, 'http://private.test/')));
  assert.equal(settled, false, 'the slow lookup is still waiting');
  const r = await slow;
  assert.ok(refused(r), JSON.stringify(r.response));
  await gw.waitForLog((l) => /URL host lookup took over/.test(l.msg ?? ''), { from });
  // The host name stays out of the log (it is part of an argument).
  assert.ok(!gw.stderr.includes('slow.test'), 'the name is not logged');
});
