// `portcullis audit verify` on a real hash chain (written by the audit
// module through build/bench/audit_bench), then on copies tampered the ways
// an attacker would: alter a record, delete one, swap two, truncate, append
// a forged one. Each must fail and name the file, line and sequence number.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { PORTCULLIS_BIN, ROOT } from '../lib/paths.mjs';

let dir, log, key, file, lines;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-'));
  log = join(dir, 'log');
  const r = spawnSync(join(ROOT, 'build/bench/audit_bench'), ['200', '20', '0'], {
    env: { ...process.env, PC_AUDIT_BENCH_KEEP: log },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  key = `${log}.key`;
  file = readdirSync(log).find((f) => f.endsWith('.jsonl'));
  lines = readFileSync(join(log, file), 'utf8').split('\n').filter(Boolean);
  assert.ok(lines.length > 100);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function verify(target, k = key) {
  return spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', k, target], { encoding: 'utf8' });
}

/** A copy of the log whose one file holds `ls` as its lines. */
function tampered(name, ls) {
  const d = join(dir, name);
  mkdirSync(d);
  writeFileSync(join(d, file), ls.join('\n') + '\n', { mode: 0o600 });
  return d;
}

test('an intact chain verifies', () => {
  const r = verify(log);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /OK: \d+ records/);
});

test('an altered record is caught at its line', () => {
  const ls = [...lines];
  ls[50] = ls[50].replace(/"principal":"[^"]*"/, '"principal":"mallory"');
  assert.notEqual(ls[50], lines[50], 'the test changed something');
  const r = verify(tampered('altered', ls));
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, new RegExp(`${file}:51 \\(seq \\d+\\)`));
});

test('a deleted record is caught', () => {
  const ls = [...lines];
  ls.splice(60, 1);
  const r = verify(tampered('deleted', ls));
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, /out of sequence|missing/);
  assert.match(r.stdout + r.stderr, new RegExp(`${file}:61`));
});

test('two swapped records are caught', () => {
  const ls = [...lines];
  [ls[70], ls[71]] = [ls[71], ls[70]];
  const r = verify(tampered('swapped', ls));
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, new RegExp(`${file}:71`));
});

test('truncation (the closing checkpoint gone) is reported', () => {
  const r = verify(tampered('truncated', lines.slice(0, 120)));
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /no closing checkpoint|truncat/);
});

test('a record forged without the key is caught', () => {
  const last = JSON.parse(lines.at(-2));
  const forged = { ...last, seq: last.seq + 1, principal: 'mallory' };
  delete forged.mac;
  const body = JSON.stringify(forged);
  forged.mac = createHmac('sha256', 'not-the-key-not-the-key-not-the-key').update(body).digest('hex');
  const ls = [...lines.slice(0, -1), JSON.stringify(forged), lines.at(-1)];
  const r = verify(tampered('forged', ls));
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, new RegExp(`${file}:${lines.length}`));
});

test('the wrong key fails at the first record; a key readable by others is refused', () => {
  const wrong = join(dir, 'wrong.key');
  writeFileSync(wrong, 'x'.repeat(32), { mode: 0o600 });
  const r = verify(log, wrong);
  assert.equal(r.status, 1);
  assert.match(r.stdout + r.stderr, new RegExp(`${file}:1 `));
  const loose = join(dir, 'loose.key');
  copyFileSync(key, loose);
  chmodSync(loose, 0o644);
  const l = verify(log, loose);
  assert.notEqual(l.status, 0);
  assert.match(l.stderr, /chmod 600/);
});

test('a log file renamed out of the listing is named by a directory verify', () => {
  // pc_audit_list skips names that are not PREFIX-STAMP-SEQ.jsonl, so a
  // renamed file would silently leave the chain; verify says so (exit 3).
  const d = tampered('renamed', lines);
  copyFileSync(join(d, file), join(d, `${file}~`));
  const r = verify(d);
  assert.equal(r.status, 3, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`warning: .*${file}~: named like a log file but not one`));
  assert.match(r.stdout, /OK WITH WARNINGS/);
});

test('tail prints what clients sent without letting it drive the terminal', () => {
  // tail reads without checking MACs: a hand-made record is enough. Its
  // tool name carries ESC sequences (clear screen, a fake prompt), DEL and
  // a C1 control, as a client could send them in a tools/call.
  const d = join(dir, 'escapes');
  mkdirSync(d);
  const rec = {
    seq: 1, ts: '2026-11-21T00:00:00.000000Z', type: 'request', principal: 'mallory',
    method: 'tools/call', tool: 'x\u001b[2J\u001b]0;pwned\u0007\u007f\u009bz', decision: 'allow', status: 'ok',
  };
  writeFileSync(join(d, 'audit-20261121T000000Z-000000000001.jsonl'), JSON.stringify(rec) + '\n', { mode: 0o600 });
  const r = spawnSync(PORTCULLIS_BIN, ['audit', 'tail', d], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /principal=mallory/);
  assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f\u0080-\u009f]/.test(r.stdout), JSON.stringify(r.stdout));
  assert.match(r.stdout, /x\\x1b\[2J\\x1b\]0;pwned\\x07\\x7f\\xc2\\x9bz/);
});

test('--json output and stray file names cannot drive the terminal either', () => {
  // The writer keeps DEL and C1 characters of a client's strings as sent;
  // --json printed the stored bytes. And a file named by whoever can write
  // the directory was printed raw by verify, ahead of the verdict.
  const d = join(dir, 'escapes-json');
  mkdirSync(d);
  const tool = 'x\u007f\u009b31mz';
  const rec = { seq: 1, ts: '2026-11-21T00:00:00.000000Z', type: 'request', principal: 'mallory', method: 'tools/call', tool, decision: 'allow', status: 'ok' };
  writeFileSync(join(d, 'audit-20261121T000000Z-000000000001.jsonl'), JSON.stringify(rec) + '\n', { mode: 0o600 });
  const controls = /[\u0000-\u0008\u000b-\u001f\u007f\u0080-\u009f]/;
  for (const args of [['tail', '--json', d], ['query', '--json', d]]) {
    const r = spawnSync(PORTCULLIS_BIN, ['audit', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!controls.test(r.stdout), `${args[0]}: ${JSON.stringify(r.stdout)}`);
    assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()).tool, tool, 'the same JSON value');
  }
  // A line with a tab between tokens and a lone C1 byte (no UTF-8) in a
  // string: still one JSON value out, with nothing raw.
  const d2 = join(dir, 'escapes-raw');
  mkdirSync(d2);
  const raw = Buffer.concat([Buffer.from('{"seq":1,\t"ts":"2026-11-21T00:00:00.000000Z","type":"request","principal":"m","method":"tools/call","tool":"a'), Buffer.from([0x9b]), Buffer.from('b","decision":"allow","status":"ok"}\n')]);
  writeFileSync(join(d2, 'audit-20261121T000000Z-000000000001.jsonl'), raw, { mode: 0o600 });
  const t2 = spawnSync(PORTCULLIS_BIN, ['audit', 'tail', '--json', d2], { encoding: 'latin1' });
  assert.equal(t2.status, 0, t2.stderr);
  assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f\u0080-\u009f]/.test(t2.stdout), JSON.stringify(t2.stdout));
  assert.equal(JSON.parse(t2.stdout.trim()).tool, 'a\ufffdb');
  const v = tampered('stray-escape', lines);
  writeFileSync(join(v, 'audit-\u001b[8m-000000000009.jsonl'), '');
  const r = verify(v);
  assert.ok(!controls.test(r.stdout), JSON.stringify(r.stdout));
  assert.match(r.stdout, /\\x1b\[8m/);
});

test('query reads past a line too long to be a record', () => {
  const all = spawnSync(PORTCULLIS_BIN, ['audit', 'query', log, '--json'], { encoding: 'utf8' });
  assert.equal(all.status, 0, all.stderr);
  const want = all.stdout.split('\n').filter(Boolean).length;
  assert.ok(want > 100);
  // A junk line over the record limit first; every record after it.
  const d = tampered('longline', [`{"junk":"${'x'.repeat(1100 * 1024)}"}`, ...lines]);
  const q = spawnSync(PORTCULLIS_BIN, ['audit', 'query', d, '--json'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(q.status, 0, q.stderr);
  assert.equal(q.stdout.split('\n').filter(Boolean).length, want);
});
