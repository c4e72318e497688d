// Drives `portcullis stdio -c CONFIG` line by line: send JSON-RPC
// messages (or raw lines), wait for the answer with a given id, close
// stdin and wait for the exit status.
import { spawn } from 'node:child_process';
import { PORTCULLIS_BIN } from './paths.mjs';

export function startStdio(configPath) {
  const child = spawn(PORTCULLIS_BIN, ['stdio', '-c', configPath], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const answers = new Map();
  const waiters = [];
  const s = { child, answers, all: [], stderr: '' };
  let buf = '';
  child.stderr.on('data', (d) => (s.stderr += d));
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      s.all.push(m);
      if (m.id !== undefined) answers.set(m.id, m);
      waiters.splice(0).forEach((w) => w());
    }
  });
  s.send = (m) => child.stdin.write((typeof m === 'string' ? m : JSON.stringify(m)) + '\n');
  s.answer = async (id, ms = 15000) => {
    const until = Date.now() + ms;
    while (!answers.has(id)) {
      if (Date.now() > until) throw new Error(`no answer for ${id}; stderr:\n${s.stderr}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
    }
    return answers.get(id);
  };
  /** The next request the gateway sends the client (elicitation, sampling...) with this method. */
  s.asked = async (method, ms = 15000) => {
    const until = Date.now() + ms;
    const find = () => [...answers.values()].find((m) => m.method === method && !m.seen);
    let m;
    while (!(m = find())) {
      if (Date.now() > until) throw new Error(`no ${method} request; stderr:\n${s.stderr}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
    }
    m.seen = true;
    return m;
  };
  s.close = () => {
    // 'close': after the exit and after the last answer left the pipe.
    const exited = new Promise((r) => child.on('close', (code) => r(code)));
    child.stdin.end();
    return exited;
  };
  s.initialize = async (id = 1, capabilities = {}) => {
    s.send({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 't', version: '1' } } });
    const r = await s.answer(id);
    if (!r.result) throw new Error(`initialize: ${JSON.stringify(r)}`);
    s.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return r;
  };
  return s;
}
