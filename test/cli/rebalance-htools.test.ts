// `xsm rebalance --dry-run --htools FILE [--htools-util FILE]`: plans offline on a Ganeti snapshot. No
// API is reachable here (XSM_API points at a closed port), so exit 0 proves nothing was called.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { writeFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';

const fixture = (f: string) => fileURLToPath(new URL(`../rebalance/fixtures/${f}`, import.meta.url));

async function xsm(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  process.env.XSM_API = 'http://127.0.0.1:1';
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('prints {moves, before, after} as JSON, offline, with the predicted score of each move', async (t) => {
  const r = await xsm(
    'rebalance',
    '--dry-run',
    '--htools',
    fixture('small.txt'),
    '--htools-util',
    fixture('small.util'),
    '--json',
  );
  t.is(r.code, 0, r.err);
  const doc = JSON.parse(r.out) as {
    moves: { vm: string; from: string; to: string; before: number; after: number }[];
    before: number;
    after: number;
  };
  t.true(Math.abs(doc.before - 2.28085497) < 1e-7, 'the same score hcheck prints');
  t.true(doc.after <= 0.62775308 + 1e-8, "no worse than hbal's answer");
  t.true(doc.moves.length > 0 && doc.moves.length <= 2);
  for (const m of doc.moves) t.deepEqual(Object.keys(m), ['vm', 'from', 'to', 'before', 'after']);
});

test('the human form shows each move with its predicted score', async (t) => {
  const r = await xsm(
    'rebalance',
    '--dry-run',
    '--htools',
    fixture('small.txt'),
    '--htools-util',
    fixture('small.util'),
  );
  t.is(r.code, 0);
  t.regex(
    r.out,
    /^score 2\.2809 -> 0\.\d+ with \d live migrations? \(hbal's cluster score; dry run, nothing touched\)/,
  );
  t.regex(r.out, /VM\s+FROM\s+TO\s+SCORE BEFORE\s+AFTER/);
});

test('--htools without --dry-run, or --htools-util alone, is a usage error (exit 2)', async (t) => {
  const a = await xsm('rebalance', '--htools', fixture('small.txt'));
  t.is(a.code, 2);
  t.regex(a.err, /--htools plans offline only: add --dry-run/);
  const b = await xsm('rebalance', '--dry-run', '--htools-util', fixture('small.util'));
  t.is(b.code, 2);
  t.regex(b.err, /--htools-util goes with --htools FILE/);
});

test('a malformed snapshot exits 1 with its file and line; an unreadable one exits 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xsm-htools-'));
  const bad = join(dir, 'bad.txt');
  writeFileSync(bad, readFileSync(fixture('small.txt'), 'utf8').replace('node2|16384|', 'node2|lots|'));
  const r = await xsm('rebalance', '--dry-run', '--htools', bad, '--json');
  t.is(r.code, 1);
  t.regex(r.err, /bad\.txt:4: field 2 \(t_mem\) must be a whole number/);
  t.regex(JSON.parse(r.out).error.code as string, /malformed-snapshot/);
  const missing = await xsm('rebalance', '--dry-run', '--htools', join(dir, 'nope.txt'));
  t.is(missing.code, 2);
  t.regex(missing.err, /cannot read .*nope\.txt: ENOENT/);
});

test('--help with --htools only prints help', async (t) => {
  const r = await xsm('rebalance', '--htools', fixture('small.txt'), '--help');
  t.is(r.code, 0);
  t.regex(r.out, /--htools FILE\s+plan offline for a Ganeti cluster snapshot/);
  t.notRegex(r.out, /score/);
});
