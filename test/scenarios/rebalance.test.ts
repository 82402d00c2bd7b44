// calmScenarios run on the simulator through XSM's real path, each checked against every invariant; and the
// limits invariant shown to catch a real run whose agents were given no limits.
import test from 'ava';
import { calmScenarios } from './rebalance-families.ts';
import { migrationLimitsHeld } from './invariants.ts';
import { registerScenarios, runScenario } from './runner.ts';

registerScenarios(test, calmScenarios());

test.serial('without limits the same version breaks 4/1/2: the invariant sees real concurrency', async (t) => {
  const sc = calmScenarios()[0]!;
  const { trace } = await runScenario({ ...sc, migrationLimits: { global: 100, perSource: 100, perTarget: 100 } });
  const broken = migrationLimitsHeld({ ...trace, migrationLimits: { global: 4, perSource: 1, perTarget: 2 } });
  t.true(broken.length > 0, 'agents without limits ran several migrations from h1 at once');
});

test.serial('the rebalance scenarios did act: moves first, then quiet; one writer, the others skipped', async (t) => {
  const [, , settle, two] = calmScenarios();
  const s = (await runScenario(settle!)).trace.rebalances;
  t.true(s[0]!.results[0]!.moves.length > 0 && s[0]!.results[0]!.version !== undefined);
  t.is(s.at(-1)!.results[0]!.version, undefined);
  const first = (await runScenario(two!)).trace.rebalances[0]!.results;
  t.is(first.filter((x) => x.version !== undefined).length, 1);
  t.regex(first.find((x) => x.version === undefined)!.skipped ?? '', /another rebalancer \(.+\) is acting now/);
});
