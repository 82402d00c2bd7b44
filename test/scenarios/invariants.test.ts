// Each invariant fails on a trace crafted to break it, and holds on one that keeps it: an invariant that
// cannot fail would prove nothing about the scenarios it checks.
import test from 'ava';
import {
  endsConvergedOrExplained,
  migrationLimitsHeld,
  noOscillation,
  noUnplannedDown,
  oneBalancerAtATime,
  noVmRunsTwice,
  onlyPlannedActionsRan,
  completedJournalsDone,
  refusedStoresNothing,
  type Trace,
} from './invariants.ts';

const d = (name: string, state = 'running', memMiB = 256, vcpus = 1) => ({ name, state, memMiB, vcpus });

function trace(over: Partial<Trace>): Trace {
  return {
    states: [],
    submits: [{ version: 1 }],
    plans: { 1: [{ id: 'create:a', kind: 'create', vm: 'a', disruptive: false }] },
    storedVersions: [1],
    jobs: [{ id: 'v1-create-a', queue: 'host-h1', version: 1, state: 'completed' }],
    outOfBand: [],
    unmanaged: [],
    desired: [{ name: 'a', host: 'h1', memMiB: 256, vcpus: 1 }],
    outcome: { version: 1, state: 'converged', actions: [{ id: 'create:a', vm: 'a', outcome: 'done' }] },
    migrationLimits: { global: 4, perSource: 1, perTarget: 2 },
    rebalances: [],
    ...over,
  };
}

test('no VM runs twice: a VM running on two hosts at one moment fails; a live migration handing over holds', (t) => {
  const twice = trace({ states: [{ cause: 'h2', hosts: { h1: [d('a')], h2: [d('a')] } }] });
  t.deepEqual(noVmRunsTwice(twice), ['state 0 (h2): a runs on h1 and h2']);
  const handover = trace({
    states: [
      { cause: 'h2', hosts: { h1: [d('a')], h2: [d('a--incoming', 'paused')] } },
      { cause: 'h1', hosts: { h1: [d('a', 'paused')], h2: [d('a--incoming', 'paused')] } },
      { cause: 'h2', hosts: { h1: [d('a', 'paused')], h2: [d('a')] } },
      { cause: 'h1', hosts: { h1: [], h2: [d('a')] } },
    ],
  });
  t.deepEqual(noVmRunsTwice(handover), []);
  t.deepEqual(noUnplannedDown(handover), [], 'and it was never down');
});

test('no unplanned down: a VM that vanishes, or crashes, without a disruptive action fails', (t) => {
  const vanished = trace({
    states: [
      { cause: 'h1', hosts: { h1: [d('a')] } },
      { cause: 'h1', hosts: { h1: [] } },
    ],
  });
  t.deepEqual(noUnplannedDown(vanished), ['state 1 (h1): a went down, and no approved plan stopped it']);
  const crashed = trace({
    states: [
      { cause: 'h1', hosts: { h1: [d('a')] } },
      { cause: 'h1', hosts: { h1: [d('a', 'crashed')] } },
    ],
  });
  t.is(noUnplannedDown(crashed).length, 1, 'a crashed domain is down');
  const planned = trace({
    states: vanished.states,
    plans: { 1: [{ id: 'remove:a', kind: 'remove', vm: 'a', disruptive: true }] },
  });
  t.deepEqual(noUnplannedDown(planned), []);
  t.deepEqual(noUnplannedDown({ ...vanished, outOfBand: ['a'] }), [], 'a fault took it down, not XSM');
});

test('ends converged or explained: a VM off its host or size, or left over, fails unless the outcome says why', (t) => {
  const wrongHost = trace({ states: [{ cause: 'h2', hosts: { h1: [], h2: [d('a')] } }] });
  t.regex(endsConvergedOrExplained(wrongHost)[0]!, /a should run on h1 .* but is running on h2/);
  const wrongSize = trace({ states: [{ cause: 'h1', hosts: { h1: [d('a', 'running', 128)] } }] });
  t.is(endsConvergedOrExplained(wrongSize).length, 1);
  const leftover = trace({ states: [{ cause: 'h1', hosts: { h1: [d('a'), d('b')] } }] });
  t.deepEqual(endsConvergedOrExplained(leftover), ['b is not in the last version but is still on h1']);
  const explained = trace({
    states: [{ cause: 'h1', hosts: { h1: [] } }],
    outcome: {
      version: 1,
      state: 'partially-failed',
      actions: [{ id: 'create:a', vm: 'a', outcome: 'failed', reason: 'no memory' }],
    },
  });
  t.deepEqual(endsConvergedOrExplained(explained), []);
  const silent = trace({
    states: [{ cause: 'h1', hosts: { h1: [d('a')] } }],
    outcome: { version: 1, state: 'partially-failed', actions: [] },
  });
  t.deepEqual(endsConvergedOrExplained(silent), [
    'the apply of version 1 ended partially-failed without naming what failed',
  ]);
  t.deepEqual(endsConvergedOrExplained(trace({ states: [{ cause: 'h1', hosts: { h1: [d('a')] } }] })), []);
});

test('refused stores nothing: a stored version no submit was told of, or its jobs, fail', (t) => {
  const sneaked = trace({ submits: [{ version: 1 }, { refused: 'stale' }], storedVersions: [1, 2] });
  t.deepEqual(refusedStoresNothing(sneaked), ['version 2 is stored, but no submit was told it was']);
  const ghostJob = trace({ jobs: [{ id: 'v2-create-b', queue: 'host-h1', version: 2, state: 'completed' }] });
  t.deepEqual(refusedStoresNothing(ghostJob), ['job host-h1/v2-create-b ran for version 2, never stored']);
  t.deepEqual(refusedStoresNothing(trace({})), []);
});

test('only planned actions ran: a job outside its version plan fails; parts of a planned action hold', (t) => {
  const stray = trace({ jobs: [{ id: 'v1-remove-z', queue: 'host-h1', version: 1, state: 'completed' }] });
  t.deepEqual(onlyPlannedActionsRan(stray), ["job host-h1/v1-remove-z is no action of version 1's plan (create:a)"]);
  const part = trace({ jobs: [{ id: 'v1-create-a-part-1', queue: 'host-h2', version: 1, state: 'completed' }] });
  t.deepEqual(onlyPlannedActionsRan(part), []);
});

test('completed journals: a completed job whose journal a late run wrote over fails; one shown done holds', (t) => {
  const overwritten = trace({
    jobs: [{ id: 'v1-create-a', queue: 'host-h1', version: 1, state: 'completed', step: 'check-plan' }],
  });
  t.deepEqual(completedJournalsDone(overwritten), [
    'job host-h1/v1-create-a completed, but its journal shows step check-plan',
  ]);
  const done = trace({ jobs: [{ id: 'v1-create-a', queue: 'host-h1', version: 1, state: 'completed', step: 'done' }] });
  t.deepEqual(completedJournalsDone(done), []);
  const failed = trace({
    jobs: [{ id: 'v1-create-a', queue: 'host-h1', version: 1, state: 'failed', step: 'check-plan' }],
  });
  t.deepEqual(completedJournalsDone(failed), []);
});

test('migration limits: two VMs leaving one host at once fail per source; one each from two hosts holds', (t) => {
  const two = trace({
    states: [
      { cause: 'h1', hosts: { h1: [d('a'), d('b')], h2: [], h3: [] } },
      { cause: 'h2', hosts: { h1: [d('a'), d('b')], h2: [d('a--incoming', 'paused')], h3: [] } },
      {
        cause: 'h3',
        hosts: { h1: [d('a'), d('b')], h2: [d('a--incoming', 'paused')], h3: [d('b--incoming', 'paused')] },
      },
    ],
  });
  t.deepEqual(migrationLimitsHeld(two), ['state 2 (h3): a, b leave h1 at once, limit 1']);
  const apart = trace({
    states: [
      { cause: 'h1', hosts: { h1: [d('a')], h2: [d('b')], h3: [] } },
      {
        cause: 'h3',
        hosts: { h1: [d('a')], h2: [d('b')], h3: [d('a--incoming', 'paused'), d('b--incoming', 'paused')] },
      },
    ],
  });
  t.deepEqual(migrationLimitsHeld(apart), []);
  t.deepEqual(migrationLimitsHeld({ ...apart, migrationLimits: { global: 1, perSource: 1, perTarget: 1 } }), [
    'state 1 (h3): 2 live migrations at once, limit 1',
    'state 1 (h3): a, b reach h3 at once, limit 1',
  ]);
});

test('one balancer at a time: two runs of one round both writing fail; one writing, one skipping holds', (t) => {
  const moves = [{ vm: 'a', from: 'h1', to: 'h2' }];
  const both = trace({
    rebalances: [
      {
        step: 0,
        round: 0,
        last: true,
        results: [
          { version: 2, moves },
          { version: 3, moves },
        ],
      },
    ],
  });
  t.deepEqual(oneBalancerAtATime(both), ['step 0 round 0: 2 rebalancers wrote versions at once']);
  const silent = trace({
    rebalances: [{ step: 0, round: 0, last: true, results: [{ version: 2, moves }, { moves }] }],
  });
  t.is(oneBalancerAtATime(silent).length, 1);
  const ok = trace({
    rebalances: [
      {
        step: 0,
        round: 0,
        last: true,
        results: [
          { version: 2, moves },
          { skipped: 'skipped: ...', moves: [] },
        ],
      },
    ],
  });
  t.deepEqual(oneBalancerAtATime(ok), []);
});

test('no oscillation: a VM moved back, or a last round still moving, fails; settling holds', (t) => {
  const back = trace({
    rebalances: [
      { step: 0, round: 0, last: false, results: [{ version: 2, moves: [{ vm: 'a', from: 'h1', to: 'h2' }] }] },
      { step: 0, round: 1, last: true, results: [{ version: 3, moves: [{ vm: 'a', from: 'h2', to: 'h1' }] }] },
    ],
  });
  t.deepEqual(noOscillation(back), [
    'step 0 round 1: a moved back to h1, which a rebalance moved it off',
    'step 0: still moving VMs after 2 rounds on the same metrics',
  ]);
  const settles = trace({
    rebalances: [
      { step: 0, round: 0, last: false, results: [{ version: 2, moves: [{ vm: 'a', from: 'h1', to: 'h2' }] }] },
      { step: 0, round: 1, last: true, results: [{ moves: [] }] },
    ],
  });
  t.deepEqual(noOscillation(settles), []);
});
