// Scenarios of the rebalancer and of live-migration limits, checked against every invariant — among them
// migrationLimitsHeld, oneBalancerAtATime and noOscillation (invariants.ts).
import type { VmLine } from '../integration/fixtures.ts';
import type { Scenario } from './runner.ts';

const vms = (prefix: string, n: number, host: string, mem = 1024): VmLine[] =>
  Array.from({ length: n }, (_, i) => ({ name: `${prefix}${i}`, host, mem }));

const four = [1, 2, 3, 4].map((i) => ({ name: `h${i}`, memMiB: 8192 }));
const three = [1, 2, 3].map((i) => ({ name: `h${i}`, memMiB: 8192 }));

export function calmScenarios(): Scenario[] {
  return [
    {
      name: 'eight live migrations in one version run within 4 at once, 1 per source, 2 per target',
      hosts: four,
      steps: [
        { submit: [...vms('a', 6, 'h1'), ...vms('b', 2, 'h2')], expect: 'stored' },
        {
          submit: [
            ...vms('a', 3, 'h2'),
            ...vms('a', 6, 'h3').slice(3),
            ...vms('b', 2, 'h4'),
            ...vms('c', 1, 'h4', 512),
          ],
          expect: 'stored',
        },
      ],
      ends: 'converged',
    },
    {
      name: 'tighter limits (2/1/1) hold too: moves from three hosts to one wait their turn',
      hosts: four,
      migrationLimits: { global: 2, perSource: 1, perTarget: 1 },
      steps: [
        { submit: [...vms('a', 2, 'h1'), ...vms('b', 2, 'h2'), ...vms('c', 2, 'h3')], expect: 'stored' },
        { submit: [...vms('a', 2, 'h4'), ...vms('b', 2, 'h4'), ...vms('c', 2, 'h4')], expect: 'stored' },
      ],
      ends: 'converged',
    },
    {
      name: 'the rebalancer settles: repeated rounds on the same metrics stop moving, nothing moves back',
      hosts: three,
      steps: [
        { submit: vms('a', 6, 'h1'), expect: 'stored' },
        { rebalance: { maxMoves: 2, cooldownSec: 0, hostCooldownSec: 0 }, rounds: 5 },
      ],
      ends: 'converged',
    },
    {
      name: 'two control workers rebalance at once: one acts, the other skips and says so',
      hosts: three,
      steps: [
        { submit: vms('a', 6, 'h1'), expect: 'stored' },
        { rebalance: {}, workers: 2 },
        { rebalance: {}, workers: 3 },
      ],
      ends: 'converged',
    },
  ];
}
