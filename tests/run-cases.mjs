#!/usr/bin/env node
// Data-driven protocol cases: tests/cases/NNN-name.case, request bytes in,
// expected status / headers / JSON out. Format: docs/testing.md.
//
//   node tests/run-cases.mjs                 all cases
//   node tests/run-cases.mjs 012 body-limit  cases whose file name contains
//                                            any of the arguments
//   node tests/run-cases.mjs --parse-only    parse every case, start nothing
//
// One gateway per distinct config (preset + `set:` overrides), started once
// and shared by the cases that use it. The upstream is build/fixtures/
// mini_upstream when built, else tests/fixtures/conformance-server.mjs; both
// offer echo, add, sleep and hang, exposed unprefixed (prefix "").
// Last line: `cases: N passed, M failed`; exit status 1 on any failure.
import { readdirSync, readFileSync } from 'node:fs';
import { join, basename } from 'node:path';
import { startGateway, setDotted } from './lib/gateway.mjs';
import { rawRequest, buildRequest } from './lib/rawhttp.mjs';
import { ROOT, SLOW, haveMiniUpstream, upstreamCommands, PORTCULLIS_BIN, haveGateway } from './lib/paths.mjs';
import { legacyInit } from './lib/mcp.mjs';

const CASES_DIR = join(ROOT, 'tests', 'cases');

// --- parsing ------------------------------------------------------------------

const OPTION_KEYS = new Set(['config', 'set', 'session', 'session-version', 'body-escapes', 'timeout']);
const EXPECT_KEYS = new Set(['status', 'json', 'header', 'no-header', 'body', 'body-contains', 'body-empty']);

/** Parses a case file's text. Throws with file:line on malformed input. */
export function parseCase(text, file = '<case>') {
  const lines = text.split('\n');
  const c = {
    file,
    title: '',
    config: 'default',
    sets: [],
    session: 'none',
    sessionVersion: undefined,
    escapes: false,
    timeoutMs: 10000,
    steps: [], // { request: {method, path, headers, body, background}, expect: [...] }
  };
  const fail = (i, msg) => {
    throw new Error(`${file}:${i + 1}: ${msg}`);
  };
  let i = 0;
  // Header section: comments and options until the first `--- request`.
  for (; i < lines.length && !lines[i].startsWith('--- '); i++) {
    const l = lines[i].trim();
    if (l === '') continue;
    if (l.startsWith('#')) {
      if (!c.title) c.title = l.replace(/^#+\s*/, '');
      continue;
    }
    const m = /^([a-z-]+):\s*(.*?)\s*(?:\s#.*)?$/.exec(l);
    if (!m || !OPTION_KEYS.has(m[1])) fail(i, `unknown option line: ${l}`);
    const [, k, v] = m;
    if (k === 'config') c.config = v;
    else if (k === 'set') {
      const eq = v.indexOf('=');
      if (eq <= 0) fail(i, 'set: wants key.path=value');
      c.sets.push([v.slice(0, eq).trim(), v.slice(eq + 1).trim()]);
    } else if (k === 'session') {
      if (!['none', 'legacy'].includes(v)) fail(i, `session: none|legacy, not ${v}`);
      c.session = v;
    } else if (k === 'session-version') c.sessionVersion = v;
    else if (k === 'body-escapes') c.escapes = /^(yes|true|1)$/i.test(v);
    else if (k === 'timeout') c.timeoutMs = parseDuration(v) ?? fail(i, `bad timeout ${v}`);
  }
  while (i < lines.length) {
    const m = /^--- request(?:\s+(background))?\s*$/.exec(lines[i]);
    if (!m) fail(i, `expected "--- request", got: ${lines[i]}`);
    const background = !!m[1];
    i++;
    // Request head: request line and header lines up to the first blank line.
    const head = [];
    for (; i < lines.length && lines[i] !== '' && !lines[i].startsWith('--- '); i++) head.push(lines[i].replace(/\r$/, ''));
    if (head.length === 0) fail(i, 'empty request');
    const rl = /^(\S+) (\S+)(?: HTTP\/1\.[01])?$/.exec(head[0]);
    if (!rl) fail(i - head.length, `bad request line: ${head[0]}`);
    const headers = head.slice(1).map((h, j) => {
      const k = h.indexOf(':');
      if (k <= 0) fail(i - head.length + 1 + j, `bad header line: ${h}`);
      return [h.slice(0, k), h.slice(k + 1).replace(/^ /, '')];
    });
    // Body: after the blank line, up to the next `--- ` line; the newline
    // that precedes that line is not part of the body.
    const body = [];
    if (i < lines.length && lines[i] === '') {
      i++;
      for (; i < lines.length && !lines[i].startsWith('--- '); i++) body.push(lines[i]);
    }
    while (body.length && body.at(-1) === '') body.pop();
    const step = { request: { method: rl[1], path: rl[2], headers, body: body.join('\n'), background }, expect: [] };
    if (!background) {
      if (i >= lines.length || !/^--- expect\s*$/.test(lines[i])) fail(i, 'expected "--- expect"');
      i++;
      for (; i < lines.length && !lines[i].startsWith('--- '); i++) {
        const l = lines[i].trim();
        if (l === '' || l.startsWith('#')) continue;
        const e = /^([a-z-]+):\s*(.*)$/.exec(l);
        if (!e || !EXPECT_KEYS.has(e[1])) fail(i, `unknown expectation: ${l}`);
        let [, k, v] = e;
        if (k === 'json') {
          try {
            v = JSON.parse(v.replace(/\s+#[^"}\]]*$/, ''));
          } catch (err) {
            fail(i, `json: ${err.message}`);
          }
        } else {
          v = v.replace(/\s+#[^"]*$/, '').trim();
        }
        step.expect.push({ k, v, line: i + 1 });
      }
      if (step.expect.length === 0) fail(i, 'a request needs at least one expectation');
    }
    c.steps.push(step);
  }
  if (c.steps.length === 0) fail(0, 'no request');
  if (c.steps.at(-1).request.background) fail(lines.length - 1, 'last request cannot be background');
  return c;
}

function parseDuration(v) {
  const m = /^(\d+)(ms|s)?$/.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : 1000);
}

/** \xHH \n \r \t \\ escapes, for bodies with `body-escapes: yes`. */
export function decodeEscapes(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '\\' || i + 1 >= s.length) {
      out.push(Buffer.from(s[i], 'utf8'));
      continue;
    }
    const n = s[++i];
    if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      out.push(Buffer.from([parseInt(s.slice(i + 1, i + 3), 16)]));
      i += 2;
    } else if (n === 'n') out.push(Buffer.from('\n'));
    else if (n === 'r') out.push(Buffer.from('\r'));
    else if (n === 't') out.push(Buffer.from('\t'));
    else if (n === '\\') out.push(Buffer.from('\\'));
    else out.push(Buffer.from('\\' + n, 'utf8'));
  }
  return Buffer.concat(out);
}

/** {port} {admin_port} {session} {repeat:N:TEXT} */
export function substitute(s, vars) {
  return s
    .replace(/\{repeat:(\d+):([^}]*)\}/g, (_, n, t) => t.repeat(Number(n)))
    .replace(/\{(port|admin_port|session)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
}

// --- checking -------------------------------------------------------------------

/** true when every key of `want` is in `got` with a matching value (recursive). */
export function subsetMatch(want, got) {
  if (want === null || typeof want !== 'object') return Object.is(want, got) || want === got;
  if (Array.isArray(want)) {
    return Array.isArray(got) && want.length <= got.length && want.every((w, i) => subsetMatch(w, got[i]));
  }
  if (got === null || typeof got !== 'object') return false;
  return Object.keys(want).every((k) => k in got && subsetMatch(want[k], got[k]));
}

function jsonOfBody(res) {
  const text = res.body.toString('utf8');
  if ((res.headers['content-type'] ?? '').includes('text/event-stream')) {
    const data = text
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trim());
    // The last event with an id and a result or error is the response.
    for (const d of data.reverse()) {
      try {
        const v = JSON.parse(d);
        if (v && ('result' in v || 'error' in v)) return v;
      } catch {
        /* keep looking */
      }
    }
    return undefined;
  }
  return JSON.parse(text);
}

/** Returns a list of failure strings (empty when the response matches). */
export function check(expect, res) {
  const errs = [];
  for (const { k, v, line } of expect) {
    const at = `(line ${line})`;
    if (k === 'status') {
      const ok = v.split('|').map((s) => Number(s.trim()));
      if (!ok.includes(res.status)) errs.push(`status ${res.status}, want ${v} ${at}`);
    } else if (k === 'header' || k === 'no-header') {
      const c = v.indexOf(':');
      const name = (c < 0 ? v : v.slice(0, c)).trim().toLowerCase();
      const val = c < 0 ? undefined : v.slice(c + 1).trim();
      const got = res.headers[name];
      if (k === 'no-header') {
        if (got !== undefined) errs.push(`header ${name} present (${got}), want absent ${at}`);
      } else if (got === undefined) errs.push(`header ${name} missing ${at}`);
      else if (val !== undefined && !got.toLowerCase().includes(val.toLowerCase()))
        errs.push(`header ${name}: ${got}, want it to contain ${val} ${at}`);
    } else if (k === 'json') {
      let got;
      try {
        got = jsonOfBody(res);
      } catch (e) {
        errs.push(`body is not JSON (${e.message}): ${preview(res.body)} ${at}`);
        continue;
      }
      if (!subsetMatch(v, got)) errs.push(`json ${JSON.stringify(got)?.slice(0, 400)} does not contain ${JSON.stringify(v)} ${at}`);
    } else if (k === 'body-empty') {
      if (res.body.length !== 0) errs.push(`body not empty: ${preview(res.body)} ${at}`);
    } else if (k === 'body-contains') {
      if (!res.body.toString('utf8').includes(v)) errs.push(`body lacks "${v}": ${preview(res.body)} ${at}`);
    } else if (k === 'body') {
      if (res.body.toString('utf8') !== v) errs.push(`body ${preview(res.body)}, want ${v} ${at}`);
    }
  }
  return errs;
}

const preview = (b) => JSON.stringify(b.toString('utf8').slice(0, 200));

// --- configs ----------------------------------------------------------------------

function upstream() {
  if (haveMiniUpstream()) return { name: 'up', prefix: '', command: upstreamCommands.mini(), timeout: '5s' };
  return { name: 'up', prefix: '', command: upstreamCommands.conformance(), timeout: '5s' };
}

const PRESETS = {
  default: () => ({ upstreams: [upstream()] }),
  // No upstream at all: hygiene answers must not depend on one.
  empty: () => ({ upstreams: [] }),
};

function configFor(c) {
  const make = PRESETS[c.config];
  if (!make) throw new Error(`${c.file}: unknown config preset "${c.config}" (have ${Object.keys(PRESETS).join(', ')})`);
  const cfg = make();
  for (const [k, v] of c.sets) setDotted(cfg, k, v);
  return cfg;
}

const configKey = (c) => JSON.stringify([c.config, [...c.sets].sort()]);

// --- running ------------------------------------------------------------------------

async function runCase(c, gw) {
  const vars = { port: gw.port, admin_port: gw.adminPort };
  if (c.session === 'legacy') {
    const s = await legacyInit(gw.url, c.sessionVersion ? { version: c.sessionVersion } : {});
    vars.session = s.sessionId;
  }
  const background = [];
  const errs = [];
  try {
    for (const [n, step] of c.steps.entries()) {
      const r = step.request;
      const path = substitute(r.path, vars);
      const headers = r.headers.map(([k, v]) => [k, substitute(v, vars)]);
      const bodyText = substitute(r.body, vars);
      const body = c.escapes ? decodeEscapes(bodyText) : Buffer.from(bodyText, 'utf8');
      const port = headers.some(([k, v]) => k.toLowerCase() === 'x-case-target' && v === 'admin') ? gw.adminPort : gw.port;
      const bytes = buildRequest(r.method, path, headers.filter(([k]) => k.toLowerCase() !== 'x-case-target'), body);
      const p = rawRequest(port, bytes, { timeoutMs: c.timeoutMs * SLOW });
      if (r.background) {
        background.push(p.catch(() => {}));
        // Give the gateway time to take the request in before the next one.
        await new Promise((res) => setTimeout(res, 200 * SLOW));
        continue;
      }
      let res;
      try {
        res = await p;
      } catch (e) {
        errs.push(`request ${n + 1}: ${e.message}`);
        break;
      }
      for (const e of check(step.expect, res)) errs.push(c.steps.length > 1 ? `request ${n + 1}: ${e}` : e);
      if (errs.length) break;
    }
  } finally {
    // Background requests may be waiting on a long upstream call; the
    // sockets close with the runner, the gateway must cope with that.
    await Promise.race([Promise.all(background), new Promise((r) => setTimeout(r, 100))]);
  }
  return errs;
}

async function main() {
  const args = process.argv.slice(2);
  const parseOnly = args.includes('--parse-only');
  const filters = args.filter((a) => !a.startsWith('--'));
  const files = readdirSync(CASES_DIR)
    .filter((f) => f.endsWith('.case'))
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();
  let passed = 0;
  let failed = 0;
  const cases = [];
  for (const f of files) {
    try {
      const c = parseCase(readFileSync(join(CASES_DIR, f), 'utf8'), f);
      configFor(c); // unknown presets are parse errors too
      cases.push(c);
    } catch (e) {
      console.log(`FAIL ${f}: ${e.message}`);
      failed++;
    }
  }
  if (parseOnly) {
    for (const c of cases) console.log(`ok   ${c.file} (${c.steps.length} request${c.steps.length > 1 ? 's' : ''}) ${c.title}`);
    passed += cases.length;
    console.log(`cases: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  }
  if (!haveGateway()) {
    console.log(`FAIL gateway binary not found: ${PORTCULLIS_BIN} (build it: make asan)`);
    console.log(`cases: 0 passed, ${cases.length + failed} failed`);
    process.exit(1);
  }

  const groups = new Map();
  for (const c of cases) {
    const k = configKey(c);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(c);
  }
  for (const group of groups.values()) {
    let gw;
    try {
      gw = await startGateway(configFor(group[0]));
    } catch (e) {
      for (const c of group) console.log(`FAIL ${c.file}: gateway did not start: ${e.message.split('\n')[0]}`);
      failed += group.length;
      continue;
    }
    for (const c of group) {
      let errs;
      try {
        errs = await runCase(c, gw);
      } catch (e) {
        errs = [e.message];
      }
      if (errs.length === 0) {
        passed++;
        console.log(`ok   ${basename(c.file)}  ${c.title}`);
      } else {
        failed++;
        console.log(`FAIL ${basename(c.file)}  ${c.title}`);
        for (const e of errs) console.log(`       ${e}`);
      }
    }
    try {
      await gw.stop();
    } catch (e) {
      failed++;
      console.log(`FAIL gateway for [${group.map((c) => c.file.slice(0, 3)).join(' ')}] stopped badly: ${e.message}`);
    }
  }
  console.log(`cases: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1]))) await main();
