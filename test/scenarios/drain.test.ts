// Drain and return on the simulator through XSM's real path, against every invariant — among them
// noHostOverloaded (no host ever holds more guest memory than it has, at any recorded moment of the
// migrations) and drainEmptiesReturnRestores (a drain empties its host; undrain --return brings its VMs back).
import test from 'ava';
import type { VmLine } from '../integration/fixtures.ts';
import { noHostOverloaded } from './invariants.ts';
import { registerScenarios, runScenario, type Scenario } from './runner.ts';

const vms = (prefix: string, n: number, host: string, mem: number): VmLine[] =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i}`, host, mem }));

function drainScenarios(): Scenario[] {
  // h1 is full (6 x 512 of 3072); the others have 1024..2048 free: the drain must spread, not pile.
  const hosts = [
    { name: 'h1', memMiB: 3072 },
    { name: 'h2', memMiB: 2048 },
    { name: 'h3', memMiB: 2048 },
    { name: 'h4', memMiB: 2048 },
  ];
  const site = [...vms('a', 6, 'h1', 512), ...vms('b', 2, 'h2', 512), ...vms('c', 1, 'h3', 1024)];
  return [
    {
      name: 'a full host drains onto three with uneven room without overloading any, and its VMs come back',
      hosts,
      steps: [
        { submit: site, expect: 'stored' },
        { drain: 'h1', expect: 'stored' },
        { undrain: 'h1', return: true },
      ],
      ends: 'converged',
    },
    {
      name: 'a drain with a VM that fits nowhere is refused whole: nothing moves',
      hosts,
      steps: [
        { submit: [...site, ...vms('d', 1, 'h4', 1536)], expect: 'stored' },
        // h1's 3072 MiB cannot fit in the 1024 + 0 + 512 MiB left elsewhere.
        { drain: 'h1', expect: 'refused' },
      ],
      ends: 'converged',
    },
  ];
}

registerScenarios(test, drainScenarios());

test.serial('noHostOverloaded sees a host holding more than it has', (t) => {
  const broken = noHostOverloaded({
    states: [
      {
        cause: 'h2',
        hosts: {
          h2: [
            { name: 'a', state: 'running', memMiB: 1024, vcpus: 1 },
            { name: 'b', state: 'running', memMiB: 1536, vcpus: 1 },
          ],
        },
      },
    ],
    submits: [],
    plans: {},
    storedVersions: [],
    jobs: [],
    outOfBand: [],
    unmanaged: [],
    desired: [],
    migrationLimits: { global: 4, perSource: 1, perTarget: 2 },
    rebalances: [],
    hostMemMiB: { h2: 2048 },
  });
  t.deepEqual(broken, ['state 0 (h2): h2 holds 2560 MiB of 2048']);
});

test.serial('the drain scenario did move VMs off h1 and back', async (t) => {
  const { trace } = await runScenario(drainScenarios()[0]!);
  const [drain, back] = trace.hostChecks!;
  t.is(drain!.moved.length, 6);
  t.deepEqual(drain!.on, []);
  t.deepEqual([...back!.on].sort(), [...drain!.moved].sort());
  t.true(trace.desired.filter((v) => v.host === 'h1').length === 6);
});
