// Rolling Dom0 upgrades on the simulator through XSM's real path (the upgrade job on the control queue, its
// drains and returns as site versions applied by the host agents, a simulated Dom0 reboot as the update),
// against every invariant: no host overloaded, no VM down that no plan stopped, drains empty their host and
// returns bring its VMs back, migration limits held (each test asserts `problems` empty: every invariant).
import test from 'ava';
import type { VmLine } from '../integration/fixtures.ts';
import { runScenario, type Scenario } from './runner.ts';

const vms = (prefix: string, n: number, host: string, mem: number): VmLine[] =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i}`, host, mem }));

// Each host has room for one other host's VMs, and no more: a drain must spread them.
const hosts = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
  { name: 'h3', memMiB: 2048 },
];
const site = [...vms('a', 2, 'h1', 512), ...vms('b', 2, 'h2', 512), ...vms('c', 2, 'h3', 512)];
const home = Object.fromEntries(site.map((v) => [v.name, v.host]));

const succeeds: Scenario = {
  name: 'a 3-host rolling upgrade: one host at a time, every VM back home, no host overloaded',
  hosts,
  steps: [
    { submit: site, expect: 'stored' },
    { upgrade: { image: 'dom0:2' }, expect: 'completed' },
  ],
  ends: 'converged',
};

const secondFails: Scenario = {
  name: "the 2nd host's update fails: the upgrade stops, the 3rd is untouched, the 2nd stays drained",
  hosts,
  steps: [
    { submit: site, expect: 'stored' },
    { upgrade: { image: 'dom0:2' }, failUpdate: { host: 'h2', why: 'disk write error' }, expect: 'failed' },
  ],
  ends: 'converged',
};

const rerun: Scenario = {
  name: 'an upgrade run again after a failure skips the hosts already on the image',
  hosts,
  steps: [
    { submit: site, expect: 'stored' },
    { upgrade: { image: 'dom0:2' }, failUpdate: { host: 'h2', why: 'disk write error' }, expect: 'failed' },
    { upgrade: { image: 'dom0:2' }, expect: 'completed' },
  ],
  ends: 'converged',
};

const crash: Scenario = {
  name: 'the control worker dies mid-upgrade: a fresh one resumes at that host without redoing the hosts done',
  hosts,
  controlLockMs: 3000,
  steps: [
    { submit: site, expect: 'stored' },
    { upgrade: { image: 'dom0:2' }, crashControlAt: 'h2', expect: 'completed' },
  ],
  ends: 'converged',
};

test.serial('the successful upgrade updated each host once, in order, and put every VM back home', async (t) => {
  const { trace, problems } = await runScenario(succeeds);
  t.deepEqual(problems, []);
  const [u] = trace.upgrades!;
  t.deepEqual(u!.updates, ['h1', 'h2', 'h3']);
  t.deepEqual(
    u!.view!.hosts.map((h) => [h.host, h.state]),
    [
      ['h1', 'done'],
      ['h2', 'done'],
      ['h3', 'done'],
    ],
  );
  t.deepEqual(Object.fromEntries(trace.desired.map((v) => [v.name, v.host])), home);
  // Each host was empty as its update started (drainEmptiesReturnRestores checks it; here: it was looked at).
  t.deepEqual(
    trace.hostChecks!.filter((c) => c.kind === 'drain').map((c) => [c.host, c.on]),
    [
      ['h1', []],
      ['h2', []],
      ['h3', []],
    ],
  );
});

test.serial(
  'a failed update says which hosts are done, which failed where and why, and which did not start',
  async (t) => {
    const { trace, problems } = await runScenario(secondFails);
    t.deepEqual(problems, []);
    const [u] = trace.upgrades!;
    t.deepEqual(u!.updates, ['h1', 'h2'], 'h3 was never updated');
    t.is(u!.view!.state, 'failed');
    t.like(u!.view!.hosts[0], { host: 'h1', state: 'done' });
    t.like(u!.view!.hosts[1], { host: 'h2', state: 'failed', step: 'update' });
    t.regex(u!.view!.hosts[1]!.why!, /disk write error/);
    t.like(u!.view!.hosts[2], { host: 'h3', state: 'not-started' });
    t.regex(u!.view!.summary, /done: h1; FAILED: h2 at update: .*stays in maintenance.*; not started: h3/);
    // h2's VMs run elsewhere; h3 kept its own.
    const where = Object.fromEntries(trace.desired.map((v) => [v.name, v.host]));
    t.false(Object.values(where).includes('h2'));
    t.is(where.c0, 'h3');
    t.is(where.c1, 'h3');
  },
);

test.serial('the re-run updates only h2 and h3', async (t) => {
  const { trace, problems } = await runScenario(rerun);
  t.deepEqual(problems, [], JSON.stringify(trace.upgrades?.map((u) => u.refused)));
  const [, again] = trace.upgrades!;
  t.deepEqual(again!.updates, ['h2', 'h3']);
  t.like(again!.view!.hosts[0], { host: 'h1', state: 'skipped', detail: 'already on dom0:2' });
  t.deepEqual(Object.fromEntries(trace.desired.map((v) => [v.name, v.host])), home);
});

test.serial('after the crash, h1 is not drained or updated again', async (t) => {
  const { trace, problems } = await runScenario(crash);
  t.deepEqual(problems, []);
  const [u] = trace.upgrades!;
  t.true(u!.crashed);
  // h2's update started twice (the killed worker's, then the resumed one); h1's once.
  t.deepEqual(u!.updates, ['h1', 'h2', 'h2', 'h3']);
  t.is(trace.hostChecks!.filter((c) => c.kind === 'drain' && c.host === 'h1').length, 1);
  t.is(u!.view!.state, 'completed');
  t.deepEqual(Object.fromEntries(trace.desired.map((v) => [v.name, v.host])), home);
});
