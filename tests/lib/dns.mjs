// A small authoritative DNS server on UDP for tests, and a way to make the
// gateway's resolver (glibc's, unchanged) ask it: the gateway runs in its
// own mount namespace where /etc/resolv.conf names this server.
//
// Answers come from a table: name -> { A: [...], AAAA: [...] }; a name
// marked { silent: true } is never answered (a server that hangs), and a
// name not in the table gets NXDOMAIN. Needs root (port 53, unshare -m).
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isIPv4 } from 'node:net';

function readName(buf, off) {
  const labels = [];
  for (;;) {
    const len = buf[off];
    if (len === undefined) throw new Error('truncated name');
    off += 1;
    if (len === 0) break;
    if (len >= 0xc0) throw new Error('compressed name in a question');
    labels.push(buf.subarray(off, off + len).toString('latin1'));
    off += len;
  }
  return { name: labels.join('.').toLowerCase(), off };
}

function v6bytes(s) {
  const [head, tail = ''] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = s.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

function answer(query, table, log) {
  const id = query.readUInt16BE(0);
  const { name, off } = readName(query, 12);
  const qtype = query.readUInt16BE(off);
  const question = query.subarray(12, off + 4);
  const entry = table[name];
  log.push({ name, qtype });
  if (entry?.silent) return null;
  const rrs = [];
  if (entry) {
    const list = qtype === 1 ? entry.A ?? [] : qtype === 28 ? entry.AAAA ?? [] : [];
    for (const a of list) {
      const data = qtype === 1 ? Buffer.from(a.split('.').map(Number)) : v6bytes(a);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the question's name
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(data.length, 10);
      rrs.push(rr, data);
    }
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  // QR, AA, RD copied, RA; NXDOMAIN for names not in the table.
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | (entry ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(rrs.length / 2, 6);
  return Buffer.concat([header, question, ...rrs]);
}

/**
 * Start the server on a random 127.53.x.y:53 and write a resolv.conf naming
 * it into dir. Returns { address, resolvConf, queries, close() }.
 */
export async function startDns(table, dir, { timeoutS = 8 } = {}) {
  const address = `127.53.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  if (!isIPv4(address)) throw new Error(address);
  const sock = dgram.createSocket('udp4');
  const queries = [];
  sock.on('message', (msg, rinfo) => {
    let out = null;
    try {
      out = answer(msg, table, queries);
    } catch {
      return; // not a query we understand: no answer
    }
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  await new Promise((res, rej) => {
    sock.once('error', rej);
    sock.bind(53, address, res);
  });
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${address}\noptions timeout:${timeoutS} attempts:1\n`);
  return { address, resolvConf, queries, close: () => new Promise((r) => sock.close(r)) };
}

/** The argv prefix that runs a command with resolvConf as /etc/resolv.conf. */
export function withResolvConf(resolvConf) {
  return ['unshare', '--mount', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf];
}
