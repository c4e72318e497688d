// Shared upstream setups for integration tests: the official reference
// servers (everything, filesystem) and the conformance fixture, plus a
// temp directory with known files for the filesystem server.
import { mkdtempSync, realpathSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { upstreamCommands, NODE22 } from './paths.mjs';

/** A temp dir with a.txt, b.txt and sub/c.txt. Call .remove() when done. */
export function makeFsRoot() {
  // realpath: the filesystem server compares resolved paths.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-fs-')));
  writeFileSync(join(dir, 'a.txt'), 'alpha\nline two\n');
  writeFileSync(join(dir, 'b.txt'), 'bravo\n');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'c.txt'), 'charlie\n');
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Gateway `upstreams:` entries for the three standard upstreams. */
export function standardUpstreams(fsDir, { confTimeout = '10s' } = {}) {
  return [
    { name: 'everything', command: upstreamCommands.everything(), timeout: '20s' },
    { name: 'fs', command: upstreamCommands.filesystem(fsDir), timeout: '20s' },
    { name: 'conf', prefix: '', command: upstreamCommands.conformance(), timeout: confTimeout },
  ];
}

/** The same upstreams as StdioClientTransport parameters (direct runs). */
export function directParams(fsDir) {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/' };
  const [cmdE, ...argsE] = upstreamCommands.everything();
  const [cmdF, ...argsF] = upstreamCommands.filesystem(fsDir);
  const [cmdC, ...argsC] = upstreamCommands.conformance();
  return {
    everything: { command: cmdE, args: argsE, env, stderr: 'ignore' },
    fs: { command: cmdF, args: argsF, env, stderr: 'ignore' },
    conf: { command: cmdC, args: argsC, env, stderr: 'ignore' },
  };
}

export { NODE22 };
