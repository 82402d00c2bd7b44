// Ganeti interop: hbal's text snapshot (-t) and utilisation file (-U) become the rebalancer's hosts and
// VMs, and a malformed file is refused with the file, line and what is wrong.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { HtoolsError, parseHtools, writeHtools } from '../../src/rebalance/htools.ts';

const fixture = (f: string) => readFileSync(new URL(`fixtures/${f}`, import.meta.url), 'utf8');

test('reads nodes, instances and utilisation as hbal does', (t) => {
  const c = parseHtools(fixture('small.txt'), 'small.txt', fixture('small.util'));
  t.deepEqual(
    c.hosts.map((h) => [h.name, h.cpus, h.memMiB, h.totalMemMiB, h.loadPool]),
    [
      ['node1', 8, 5120 + 4096 + 4096 + 2048, 16384, 1],
      ['node2', 8, 15360, 16384, 1],
      ['node3', 8, 13312 + 2048, 16384, 1],
    ],
  );
  const db2 = c.vms.find((v) => v.name === 'db2')!;
  t.like(db2, { host: 'node3', memMiB: 2048, vcpus: 2, cpuLoad: 0.2, memLoad: 0, pinned: true });
  t.is(c.maxVcpuRatio, 4);
});

test('instances missing from the utilisation file count 1 of each load, as hbal', (t) => {
  const c = parseHtools(fixture('small.txt'), 'small.txt');
  t.true(c.vms.every((v) => v.cpuLoad === 1 && v.memLoad === 1 && v.diskLoad === 1 && v.netLoad === 1));
});

const malformed: [string, (s: string) => string, RegExp][] = [
  [
    'a number field that is not a number',
    (s) => s.replace('node2|16384|', 'node2|lots|'),
    /^small\.txt:4: field 2 \(t_mem\) must be a whole number/,
  ],
  [
    'an instance on an unknown node',
    (s) => s.replace('|node3||ext', '|node9||ext'),
    /^small\.txt:10: instance db2 is on node node9, which is not listed/,
  ],
  ['a node listed twice', (s) => s.replace('node3|', 'node2|'), /^small\.txt:5: node node2 is listed twice/],
  [
    'an offline flag that is not Y or N',
    (s) => s.replace('|8|N|', '|8|maybe|'),
    /^small\.txt:3: field 8 \(offline\) must be Y or N/,
  ],
  ['a missing section', (s) => s.split('\n\n').slice(0, 2).join('\n\n'), /^small\.txt:\d+: expected three sections/],
];
for (const [what, edit, message] of malformed)
  test(`refuses ${what}, naming the file and line`, (t) => {
    const e = t.throws(() => parseHtools(edit(fixture('small.txt')), 'small.txt'), { instanceOf: HtoolsError });
    t.regex(e.message, message);
  });

test('refuses a utilisation line for an unknown instance or with a bad number, with its line', (t) => {
  const text = fixture('small.txt');
  t.throws(() => parseHtools(text, 'small.txt', 'web1 1 0 0 0\nghost 1 0 0 0\n', 'u.txt'), {
    message: /^u\.txt:2: instance ghost is not in the cluster snapshot/,
  });
  t.throws(() => parseHtools(text, 'small.txt', 'web1 -1 0 0 0\n', 'u.txt'), {
    message: /^u\.txt:1: field 2 must be a number >= 0/,
  });
  t.throws(() => parseHtools(text, 'small.txt', 'web1 1 0\n', 'u.txt'), {
    message: /^u\.txt:1: expected "name cpu mem disk net"/,
  });
});

test('writes a placement back with free memory moved along', (t) => {
  const out = writeHtools(fixture('small.txt'), new Map([['web1', 'node2']]));
  const c = parseHtools(out, 'out.txt');
  t.is(c.vms.find((v) => v.name === 'web1')!.host, 'node2');
  t.true(out.includes('node1|16384|1024|9216|'));
  t.true(out.includes('node2|16384|1024|11264|'));
});
