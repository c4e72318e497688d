// Every record of an audit log directory, oldest file first, parsed.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function readAuditRecords(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}
