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

test('a secret from ${env:} printed by an upstream is redacted in the gateway log', async () => {
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
    { env: { PC_TEST_CANARY: CANARY } },
  );
  try {
    assert.ok(await waitFor(() => gw.logs.some((l) => /UPSTREAM_CREDENTIAL=/.test(l.msg)), 5000), 'the line was forwarded');
    const line = gw.logs.find((l) => /UPSTREAM_CREDENTIAL=/.test(l.msg));
    assert.match(line.msg, /UPSTREAM_CREDENTIAL=<redacted>/);
    assert.match(line.msg, /Bearer <redacted>/);
    // A bearer credential in a request is never logged either.
    await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'ping' }, { authorization: `Bearer ${CANARY}-not-a-key` });
    await gw.stop();
    assert.ok(!gw.stderr.includes(CANARY), 'the canary appears nowhere in the log');
  } catch (e) {
    await gw.kill();
    throw e;
  }
});
