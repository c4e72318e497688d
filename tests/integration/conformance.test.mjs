// The official MCP conformance suite against the gateway fronting only the
// conformance fixture (prefix "", so the suite sees its own tool names).
// 2025-11-25 must pass; 2026-07-28 is run and its summary recorded in
// build/conformance-2026-07-28.txt, not asserted (yet).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withGateway } from '../lib/gateway.mjs';
import { CONFORMANCE_CLI, NODE22, ROOT, haveGateway, upstreamCommands } from '../lib/paths.mjs';

const skip = haveGateway() ? false : 'gateway binary not built';

function runSuite(url, requirements) {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE22, [CONFORMANCE_CLI, 'server', '--url', url, '--requirements', requirements], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

const config = () => ({
  upstreams: [{ name: 'conf', prefix: '', command: upstreamCommands.conformance(), timeout: '10s' }],
});

// Only the per-scenario lines and the totals: the rest is progress chatter.
const summary = (out) =>
  out
    .split('\n')
    .filter((l) => /^\s*[✓✗!]|^Total|^Not scored|^Running requirements/.test(l))
    .join('\n');

test('conformance --requirements 2025-11-25 passes through the gateway', { skip, timeout: 300000 }, async () => {
  await withGateway(config(), async (gw) => {
    const r = await runSuite(gw.url, '2025-11-25');
    assert.equal(r.code, 0, `conformance exited ${r.code}:\n${summary(r.out)}`);
  });
});

test('conformance --requirements 2026-07-28 (recorded, not asserted)', { skip, timeout: 300000 }, async (t) => {
  await withGateway(config(), async (gw) => {
    const r = await runSuite(gw.url, '2026-07-28');
    mkdirSync(join(ROOT, 'build'), { recursive: true });
    const file = join(ROOT, 'build', 'conformance-2026-07-28.txt');
    writeFileSync(file, `exit ${r.code}\n${summary(r.out)}\n`);
    t.diagnostic(`2026-07-28: exit ${r.code}; ${(r.out.match(/^Total.*$/m) ?? ['no total'])[0]} (see ${file})`);
  });
});
