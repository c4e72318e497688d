// Start and stop the real portcullis binary for a test.
//
//   const gw = await startGateway({ upstreams: [...], limits: {...} });
//   ... gw.url (http://127.0.0.1:PORT/mcp), gw.adminUrl, gw.logs ...
//   await gw.stop();   // SIGTERM; throws on exit != 0 or sanitizer reports
//
// The config object is written as YAML to a fresh temp dir; `listen` and
// `admin_listen` default to 127.0.0.1:0 and the ports are read from the
// gateway's JSON log lines on stderr ({"msg":"listening","listener":"mcp",
// "port":N}). startGateway resolves after {"msg":"ready"}.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PORTCULLIS_BIN, SLOW } from './paths.mjs';

const SANITIZER_MARKERS = [
  'ERROR: AddressSanitizer',
  'ERROR: LeakSanitizer',
  'runtime error:',
  'ERROR: UndefinedBehaviorSanitizer',
];

// --- YAML ----------------------------------------------------------------------
// A small block-style emitter for plain config data (objects, arrays,
// strings, numbers, booleans). Strings are always double-quoted with JSON
// escapes, which YAML reads the same way, so no value can be misread as a
// number, a bool or a comment.

function yamlScalar(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(String(v));
}

function yamlLines(v, indent) {
  const pad = ' '.repeat(indent);
  const out = [];
  if (Array.isArray(v)) {
    if (v.length === 0) return [`${pad}[]`];
    for (const item of v) {
      if (item !== null && typeof item === 'object' && !(Array.isArray(item) && item.length === 0)) {
        const inner = yamlLines(item, indent + 2);
        out.push(`${pad}- ${inner[0].trimStart()}`, ...inner.slice(1));
      } else {
        out.push(`${pad}- ${Array.isArray(item) ? '[]' : yamlScalar(item)}`);
      }
    }
    return out;
  }
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  if (keys.length === 0) return [`${pad}{}`];
  for (const k of keys) {
    const val = v[k];
    if (val !== null && typeof val === 'object' && Object.keys(val).length > 0) {
      out.push(`${pad}${k}:`, ...yamlLines(val, indent + 2));
    } else if (val !== null && typeof val === 'object') {
      out.push(`${pad}${k}: ${Array.isArray(val) ? '[]' : '{}'}`);
    } else {
      out.push(`${pad}${k}: ${yamlScalar(val)}`);
    }
  }
  return out;
}

/**
 * The secret part of an API key ("pcs_" + 16 hex id + "_" + 43 base64url).
 * Not key.split('_').pop(): base64url has '_' of its own, and the tail
 * after the last one can be a few characters that turn up anywhere.
 */
export function keySecret(key) {
  return key.slice('pcs_'.length + 16 + 1);
}

export function toYaml(obj) {
  return yamlLines(obj, 0).join('\n') + '\n';
}

// Sets a dotted key ("limits.max_body_bytes") in a config object; values
// that look like integers become numbers.
export function setDotted(obj, dotted, value) {
  const parts = dotted.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null) o[p] = {};
    o = o[p];
  }
  o[parts.at(-1)] = typeof value !== 'string' ? value
    : /^-?\d+$/.test(value) ? Number(value)
    : value === 'true' || value === 'false' ? value === 'true'
    : value;
  return obj;
}

// --- process -------------------------------------------------------------------

function parseLine(line) {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

// A policy that grants everything to every caller: the default for tests
// that are not about authorization (the gateway itself grants nothing
// without a policy: section). Policy tests pass their own `policy`, or
// `policy: undefined` for none at all.
export const OPEN_POLICY = {
  default_roles: ['test-all'],
  roles: { 'test-all': { tools: [{ match: '*', access: 'all' }], prompts: ['*'], resources: ['*'] } },
};

/**
 * Starts `portcullis serve -c <tmp>/portcullis.yaml`.
 * opts.env: extra environment; opts.readyTimeoutMs (default 60 s);
 * opts.waitReady: false to return once both ports are known.
 * opts.wrapper: argv prefix for this start only (e.g. a shell setting ulimits).
 * PORTCULLIS_WRAPPER (env, space-separated) prefixes the command, e.g. valgrind.
 */
export async function startGateway(config, opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  const cfg = {
    listen: '127.0.0.1:0',
    admin_listen: '127.0.0.1:0',
    log_level: 'debug',
    // Tests that are not about authentication run without it (loopback
    // only); auth tests pass their own auth: section.
    auth: 'none',
    policy: OPEN_POLICY,
    ...config,
  };
  const configPath = join(dir, 'portcullis.yaml');
  writeFileSync(configPath, toYaml(cfg));

  const wrapper = (process.env.PORTCULLIS_WRAPPER ?? '').split(/\s+/).filter(Boolean);
  const argv = [...(opts.wrapper ?? []), ...wrapper, PORTCULLIS_BIN, 'serve', '-c', configPath];
  const child = spawn(argv[0], argv.slice(1), {
    cwd: dir,
    env: { ...process.env, ...(opts.env ?? {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  const gw = {
    dir,
    configPath,
    config: cfg,
    proc: child,
    pid: child.pid,
    port: 0,
    adminPort: 0,
    url: '',
    adminUrl: '',
    logs: [], // parsed JSON log records, in order
    stderr: '', // everything, for sanitizer checks and failure messages
    stdout: '',
    exited: null, // {code, signal} once the process ended
  };

  const waiters = new Set();
  const notify = () => {
    for (const w of waiters) w();
  };
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    gw.stderr += chunk;
    partial += chunk;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const rec = parseLine(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
      if (rec) {
        gw.logs.push(rec);
        if (rec.msg === 'listening' && rec.listener === 'mcp') gw.port = rec.port;
        if (rec.msg === 'listening' && rec.listener === 'admin') gw.adminPort = rec.port;
      }
    }
    notify();
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c) => (gw.stdout += c));
  const exitPromise = new Promise((res) => {
    child.on('exit', (code, signal) => {
      gw.exited = { code, signal };
      notify();
      res(gw.exited);
    });
    child.on('error', (err) => {
      gw.exited = { code: -1, signal: null, error: err };
      notify();
      res(gw.exited);
    });
  });

  /** Resolves with the first log record (at index >= from) matching pred. */
  gw.waitForLog = (pred, { timeoutMs = 15000, from = 0 } = {}) =>
    new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < gw.logs.length; i++) {
          if (pred(gw.logs[i])) {
            cleanup();
            resolve(gw.logs[i]);
            return;
          }
        }
        if (gw.exited) {
          cleanup();
          reject(new Error(`gateway exited (${JSON.stringify(gw.exited)}) while waiting for a log line\n${tail(gw.stderr)}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs * SLOW} ms waiting for a log line\n${tail(gw.stderr)}`));
      }, timeoutMs * SLOW);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  /**
   * pid of the named upstream's newest child (spawned at or after log index
   * `after`). The contract is {"msg":"upstream spawned","upstream":N,"pid":P};
   * the older text form "upstream 'N': started pid P" is accepted too.
   */
  gw.upstreamPid = async (name, { after = 0, timeoutMs = 15000 } = {}) => {
    await gw.waitForLog((r) => spawnedPid(r, name) !== null, { from: after, timeoutMs });
    const all = gw.logs.slice(after).map((r) => spawnedPid(r, name)).filter((p) => p !== null);
    return all.at(-1);
  };

  let stopped = false;
  /**
   * SIGTERM, wait for exit, then check: exit status 0, no sanitizer report.
   * Throws an Error describing what was wrong (after cleaning up either way).
   */
  gw.stop = async ({ timeoutMs = 20000, expectCode = 0 } = {}) => {
    if (stopped) return gw.exited;
    stopped = true;
    if (!gw.exited) child.kill('SIGTERM');
    let timer;
    const res = await Promise.race([
      exitPromise,
      new Promise((r) => (timer = setTimeout(() => r(null), timeoutMs * SLOW))),
    ]);
    clearTimeout(timer);
    let hung = false;
    if (!res) {
      hung = true;
      child.kill('SIGKILL');
      await exitPromise;
    }
    rmSync(dir, { recursive: true, force: true });
    const problems = [];
    if (hung) problems.push(`did not exit within ${timeoutMs * SLOW} ms of SIGTERM`);
    else if (gw.exited.code !== expectCode)
      problems.push(`exit ${JSON.stringify(gw.exited)}, expected code ${expectCode}`);
    for (const m of SANITIZER_MARKERS) if (gw.stderr.includes(m)) problems.push(`stderr contains "${m}"`);
    if (problems.length) throw new Error(`gateway: ${problems.join('; ')}\n${tail(gw.stderr, 60)}`);
    return gw.exited;
  };

  // Kill without checks: for test teardown after an earlier failure.
  gw.kill = async () => {
    if (!gw.exited) child.kill('SIGKILL');
    stopped = true;
    await exitPromise;
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await gw.waitForLog(() => gw.port > 0 && gw.adminPort > 0, {
      timeoutMs: opts.readyTimeoutMs ?? 60000,
    });
    gw.url = `http://127.0.0.1:${gw.port}/mcp`;
    gw.baseUrl = `http://127.0.0.1:${gw.port}`;
    gw.adminUrl = `http://127.0.0.1:${gw.adminPort}`;
    if (opts.waitReady !== false) {
      await gw.waitForLog((r) => r.msg === 'ready', { timeoutMs: opts.readyTimeoutMs ?? 60000 });
    }
  } catch (e) {
    await gw.kill();
    throw e;
  }
  return gw;
}

function spawnedPid(rec, name) {
  if (rec.msg === 'upstream spawned' && rec.upstream === name && Number.isInteger(rec.pid)) return rec.pid;
  const m = /^upstream '(.+)': started pid (\d+)/.exec(rec.msg ?? '');
  return m && m[1] === name ? Number(m[2]) : null;
}

export function tail(text, lines = 30) {
  return text.split('\n').slice(-lines).join('\n');
}

/**
 * Runs fn(gw) with a gateway started from config and always stops it. A
 * failing stop (bad exit, sanitizer report) fails the test unless fn
 * already failed, whose error wins.
 */
export async function withGateway(config, fn, opts) {
  const gw = await startGateway(config, opts);
  let failed = false;
  try {
    return await fn(gw);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    if (failed) {
      try {
        await gw.stop();
      } catch {
        /* the test's own error is the one to report */
      }
    } else {
      await gw.stop();
    }
  }
}
