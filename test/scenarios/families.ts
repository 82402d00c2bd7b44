// Scenario families, generated from a few shapes so each behaviour is tried on several placements. Every
// scenario is checked against the hand-written invariants (invariants.ts) by the runner; `expect` on a
// submit and `ends` say what the scenario means to exercise.
import type { VmLine } from '../integration/fixtures.ts';
import type { Scenario } from './runner.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
  { name: 'h3', memMiB: 1024 },
];
const H = ['h1', 'h2', 'h3'];
const vm = (i: number, host: string, over: Partial<VmLine> = {}): VmLine => ({
  name: `vm${i}`,
  host,
  mem: 128,
  ...over,
});
const spread = (n: number) => Array.from({ length: n }, (_, i) => vm(i, H[i % 3]!));

export function lifecycleScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (let n = 1; n <= 8; n++)
    out.push({
      name: `create ${n} VMs over 3 hosts`,
      hosts: HOSTS,
      steps: [{ submit: spread(n), expect: 'stored' }],
      ends: 'converged',
    });
  for (const n of [2, 3]) {
    out.push({
      name: `remove 1 of ${n} VMs with consent`,
      hosts: HOSTS,
      steps: [
        { submit: spread(n), expect: 'stored' },
        { submit: spread(n).slice(1), consent: true, expect: 'stored' },
      ],
      ends: 'converged',
    });
    out.push({
      name: `remove 1 of ${n} VMs without consent is refused and stores nothing`,
      hosts: HOSTS,
      steps: [
        { submit: spread(n), expect: 'stored' },
        { submit: spread(n).slice(1), expect: 'refused' },
      ],
      ends: 'converged',
    });
  }
  for (const n of [1, 2, 4])
    out.push({
      name: `resubmitting ${n} VMs unchanged stores nothing`,
      hosts: HOSTS,
      steps: [
        { submit: spread(n), expect: 'stored' },
        { submit: spread(n), expect: 'unchanged' },
      ],
      ends: 'converged',
    });
  for (const n of [1, 3])
    out.push({
      name: `remove all ${n} VMs with consent`,
      hosts: HOSTS,
      steps: [
        { submit: spread(n), expect: 'stored' },
        { submit: [], consent: true, expect: 'stored' },
      ],
      ends: 'converged',
    });
  for (const host of ['h1', 'h2'])
    out.push({
      name: `a VM that does not fit ${host} is refused at plan time`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, host)], expect: 'stored' },
        { submit: [vm(0, host), vm(1, host, { mem: 2048 })], expect: 'refused' },
      ],
      ends: 'converged',
    });
  out.push({
    name: 'a VM on an undeclared host is refused',
    hosts: HOSTS,
    steps: [
      { submit: [vm(0, 'h1')], expect: 'stored' },
      { submit: [vm(0, 'h1'), vm(1, 'h9')], expect: 'refused' },
    ],
    ends: 'converged',
  });
  return out;
}

export function changeScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const from of H)
    for (const to of H)
      if (from !== to)
        out.push({
          name: `live migrate vm0 from ${from} to ${to} beside others`,
          hosts: HOSTS,
          steps: [
            { submit: [vm(0, from), vm(1, to), vm(2, from)], expect: 'stored' },
            { submit: [vm(0, to), vm(1, to), vm(2, from)], expect: 'stored' },
          ],
          ends: 'converged',
        });
  out.push({
    name: 'a VM walks h1 -> h2 -> h3 -> h1 in three versions',
    hosts: HOSTS,
    steps: [
      { submit: [vm(0, 'h1')], expect: 'stored' },
      { submit: [vm(0, 'h2')], expect: 'stored' },
      { submit: [vm(0, 'h3')], expect: 'stored' },
      { submit: [vm(0, 'h1')], expect: 'stored' },
    ],
    ends: 'converged',
  });
  for (const [a, b] of [
    ['h1', 'h2'],
    ['h2', 'h3'],
  ] as const)
    out.push({
      name: `swap two VMs between ${a} and ${b}`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, a), vm(1, b)], expect: 'stored' },
        { submit: [vm(0, b), vm(1, a)], consent: true, expect: 'stored' },
      ],
      ends: 'converged',
    });
  for (const [what, before, after] of [
    ['memory up', { mem: 128 }, { mem: 256 }],
    ['memory down', { mem: 256 }, { mem: 128 }],
    ['vCPUs up', { vcpus: 1 }, { vcpus: 2 }],
    ['vCPUs down', { vcpus: 2 }, { vcpus: 1 }],
  ] as const)
    out.push({
      name: `live reconfigure: ${what}`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, 'h1', before), vm(1, 'h2')], expect: 'stored' },
        { submit: [vm(0, 'h1', after), vm(1, 'h2')], expect: 'stored' },
      ],
      ends: 'converged',
    });
  for (const [what, after] of [
    ['memory', { mem: 256 }],
    ['vCPUs', { vcpus: 2 }],
  ] as const) {
    out.push({
      name: `restart reconfigure (${what}, no live growth) with consent`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, 'h1', { config: 'fixed' }), vm(1, 'h2')], expect: 'stored' },
        { submit: [vm(0, 'h1', { config: 'fixed', ...after }), vm(1, 'h2')], consent: true, expect: 'stored' },
      ],
      ends: 'converged',
    });
    out.push({
      name: `restart reconfigure (${what}) without consent is refused`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, 'h1', { config: 'fixed' })], expect: 'stored' },
        { submit: [vm(0, 'h1', { config: 'fixed', ...after })], expect: 'refused' },
      ],
      ends: 'converged',
    });
  }
  return out;
}

export function faultScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const victim of [0, 1, 2])
    out.push({
      name: `vm${victim} destroyed behind XSM's back, then repaired by ?repair`,
      hosts: HOSTS,
      steps: [
        { submit: spread(3), expect: 'stored' },
        { destroy: `vm${victim}` },
        { submit: spread(3), repair: true, expect: 'stored' },
      ],
      ends: 'converged',
    });
  for (const victim of [0, 1])
    out.push({
      name: `vm${victim} destroyed between storing a removal and running it`,
      hosts: HOSTS,
      steps: [
        { submit: spread(2), expect: 'stored' },
        { submit: spread(2).filter((v) => v.name !== `vm${victim}`), consent: true, apply: false, expect: 'stored' },
        { destroy: `vm${victim}` },
        { applyCurrent: true },
      ],
    });
  for (const target of ['h2', 'h3'])
    out.push({
      name: `live migration onto ${target}, which someone else's guest has filled: refused by Xen, VM stays up`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, 'h1', { mem: 512 }), vm(1, target)], expect: 'stored' },
        { hog: target, memMiB: 700 },
        { submit: [vm(0, target, { mem: 512 }), vm(1, target)], expect: 'stored' },
      ],
      ends: 'partially-failed',
    });
  for (const target of ['h1', 'h3'])
    out.push({
      name: `create on a full ${target} fails and names why; creates elsewhere go on`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(9, 'h2')], expect: 'stored' },
        { hog: target, memMiB: 1000 },
        { submit: [vm(9, 'h2'), vm(0, target, { mem: 256 }), vm(1, 'h2')], expect: 'stored' },
      ],
      ends: 'partially-failed',
    });
  for (const victim of [0, 2])
    out.push({
      name: `vm${victim} destroyed behind XSM's back, then an unrelated change: its plan starts vm${victim} again`,
      hosts: HOSTS,
      steps: [
        { submit: spread(3), expect: 'stored' },
        { destroy: `vm${victim}` },
        { submit: [...spread(3), vm(3, 'h1')], expect: 'stored' },
      ],
      ends: 'converged',
    });
  out.push({
    name: 'a restart reconfigure whose new size no longer fits is rolled back: the VM runs as it was',
    hosts: HOSTS,
    steps: [
      { submit: [vm(0, 'h1', { config: 'fixed', mem: 256 })], expect: 'stored' },
      { hog: 'h1', memMiB: 700 },
      { submit: [vm(0, 'h1', { config: 'fixed', mem: 512 })], consent: true, expect: 'stored' },
    ],
    ends: 'partially-failed',
  });
  return out;
}

export function raceScenarios(): Scenario[] {
  const out: Scenario[] = [];
  const base = spread(3);
  const edits: [string, VmLine[]][] = [
    ['add a VM', [...base, vm(3, 'h1')]],
    ['move vm0', [vm(0, 'h2'), ...base.slice(1)]],
    ['grow vm1', [base[0]!, vm(1, 'h2', { mem: 256 }), base[2]!]],
    ['shrink vm2', [base[0]!, base[1]!, vm(2, 'h3', { mem: 64 })]],
  ];
  for (let i = 0; i < edits.length; i++)
    for (let j = i + 1; j < edits.length; j++)
      out.push({
        name: `racing submits on one base: ${edits[i]![0]} vs ${edits[j]![0]}: one stored, one refused`,
        hosts: HOSTS,
        steps: [{ submit: base, expect: 'stored' }, { race: [edits[i]![1], edits[j]![1]] }],
        ends: 'converged',
      });
  for (const [what, e] of edits.slice(0, 3))
    out.push({
      name: `three racing submits (${what} and two more): one stored`,
      hosts: HOSTS,
      steps: [{ submit: base, expect: 'stored' }, { race: [e, edits[3]![1], [...base, vm(7, 'h3')]] }],
      ends: 'converged',
    });
  for (const n of [1, 2, 3])
    out.push({
      name: `${n + 1} identical racing submits: one stored, the others told nothing changed`,
      hosts: HOSTS,
      steps: [
        { submit: base, expect: 'stored' },
        { race: Array.from({ length: n + 1 }, () => [...base, vm(5, 'h1')]) },
      ],
      ends: 'converged',
    });
  return out;
}

/**
 * An agent killed in the middle of each kind of toolstack call, before and after the call took effect: the
 * job is taken over by a new agent and resumed at its step. The invariants say what must hold (no VM twice,
 * none down that was not planned to stop, the end state the desired one).
 */
export function crashScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const when of ['before', 'after'] as const) {
    out.push({
      name: `agent killed ${when} xl create: the new agent finishes the create, once`,
      hosts: HOSTS,
      steps: [{ submit: spread(3), expect: 'stored', crash: { host: 'h1', op: 'create', when } }],
      ends: 'converged',
    });
    out.push({
      name: `source agent killed ${when} xl migrate: the VM ends on the target, running once`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, 'h1'), vm(1, 'h2')], expect: 'stored' },
        { submit: [vm(0, 'h2'), vm(1, 'h2')], expect: 'stored', crash: { host: 'h1', op: 'migrate', when } },
      ],
      ends: 'converged',
    });
    out.push({
      name: `agent killed ${when} the shutdown of a consented removal: the VM is gone, the others untouched`,
      hosts: HOSTS,
      steps: [
        { submit: spread(3), expect: 'stored' },
        { submit: spread(3).slice(1), consent: true, expect: 'stored', crash: { host: 'h1', op: 'shutdown', when } },
      ],
      ends: 'converged',
    });
    out.push({
      name: `agent killed ${when} a live memory change: the VM keeps running with its new size`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, 'h1'), vm(1, 'h2')], expect: 'stored' },
        {
          submit: [vm(0, 'h1', { mem: 256 }), vm(1, 'h2')],
          expect: 'stored',
          crash: { host: 'h1', op: 'setMemory', when },
        },
      ],
      ends: 'converged',
    });
    out.push({
      name: `agent killed ${when} the create of a restart reconfigure: the VM comes back once, resized`,
      hosts: HOSTS,
      steps: [
        { submit: [vm(0, 'h1', { config: 'fixed' }), vm(1, 'h2')], expect: 'stored' },
        {
          submit: [vm(0, 'h1', { config: 'fixed', mem: 256 }), vm(1, 'h2')],
          consent: true,
          expect: 'stored',
          crash: { host: 'h1', op: 'create', when },
        },
      ],
      ends: 'converged',
    });
  }
  return out;
}

/**
 * Redis restarted while an apply runs (down long enough for every worker to lose its connection), on a
 * Redis of the scenario's own that persists every write: the apply picks up where it was and converges.
 */
export function redisRestartScenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const [afterMs, downMs] of [
    [0, 500],
    [30, 1500],
    [100, 3000],
  ] as const)
    out.push({
      name: `Redis restarted ${afterMs} ms into creating 6 VMs, down ${downMs} ms: the apply converges, each VM once`,
      hosts: HOSTS,
      privateRedis: true,
      steps: [{ submit: spread(6), expect: 'stored', restartRedis: { afterMs, downMs } }],
      ends: 'converged',
    });
  // Outages past BullMQ's blocking timeout (~5 s): the workers' blocking connections stay parked, and only
  // the worker supervisor (src/runtime/worker-supervisor.ts) replacing them once Redis is back lets the apply go on.
  for (const downMs of [8000, 20_000])
    out.push({
      name: `Redis down ${downMs / 1000} s while creating 6 VMs and again while idle, then 6 migrations: the workers are replaced, each VM once`,
      hosts: HOSTS,
      privateRedis: true,
      steps: [
        { submit: spread(6), expect: 'stored', restartRedis: { afterMs: 30, downMs } },
        // Then down again while every worker is idle, blocked on Redis: the next apply needs them all back.
        { redisOutage: { downMs } },
        {
          submit: spread(6).map((v, i) => ({ ...v, host: H[(i + 1) % 3]! })),
          expect: 'stored',
          // Parked workers never end it, and BullMQ's own reconnect backoff (up to 20 s) would mostly hold it
          // past this. Alone it ends about 1 s after the submit; beside the whole suite on a loaded CI it once
          // took over 8 s.
          endsWithinMs: 12_000,
        },
      ],
      ends: 'converged',
    });
  out.push({
    name: 'Redis restarted during live migrations: every VM ends on its target, running once',
    hosts: HOSTS,
    privateRedis: true,
    steps: [
      { submit: spread(6), expect: 'stored' },
      {
        submit: spread(6).map((v, i) => ({ ...v, host: H[(i + 1) % 3]! })),
        expect: 'stored',
        restartRedis: { afterMs: 20, downMs: 1000 },
      },
    ],
    ends: 'converged',
  });
  return out;
}

/**
 * A job whose lock lapses while its agent still runs its step (runner.ts, Stall): the agents' lock is 4 s and
 * their stalled check runs every 2 s, so a call held 9 s is handed over and run again from the journal while
 * the first run is still inside it. Each scenario's log is every changing toolstack call on h1, in order: the
 * takeover does the action once, and each call the first run makes after its release is refused by Xen.
 */
export function stallScenarios(): Scenario[] {
  const ms = 9000;
  const held = (op: string, when: 'before' | 'after') => [
    `h1 ${op} held ${when} it took effect; the agent renews no lock`,
    `h1 ${op} released after its job was taken over`,
  ];
  const create = (when: 'before' | 'after') => ({
    hosts: HOSTS,
    steps: [
      { submit: [vm(0, 'h1')], expect: 'stored' as const, stall: { host: 'h1', op: 'create' as const, when, ms } },
    ],
    ends: 'converged' as const,
  });
  const migrate = (when: 'before' | 'after') => ({
    hosts: HOSTS,
    steps: [
      { submit: [vm(0, 'h1')], expect: 'stored' as const },
      { submit: [vm(0, 'h2')], expect: 'stored' as const, stall: { host: 'h1', op: 'migrate' as const, when, ms } },
    ],
    ends: 'converged' as const,
  });
  const resize = (when: 'before' | 'after') => ({
    hosts: HOSTS,
    steps: [
      { submit: [vm(0, 'h1', { config: 'fixed' })], expect: 'stored' as const },
      {
        submit: [vm(0, 'h1', { config: 'fixed', mem: 256 })],
        consent: true,
        expect: 'stored' as const,
        stall: { host: 'h1', op: 'shutdown' as const, when, ms },
      },
    ],
    ends: 'converged' as const,
  });
  // check-plan and render-config only read, so nothing is journaled before provision-disks' start: a lock lost
  // in check-plan hands over a job whose journal is empty, and both runs go through check-plan.
  const check = (when: 'before' | 'after', holdTakeoverMs?: number) => ({
    hosts: HOSTS,
    steps: [
      {
        submit: [vm(0, 'h1')],
        expect: 'stored' as const,
        stall: { host: 'h1', op: 'find' as const, when, ms, ...(holdTakeoverMs ? { holdTakeoverMs } : {}) },
      },
    ],
    ends: 'converged' as const,
  });
  const checkTakeover = [
    'h1 find held after it took effect; the agent renews no lock',
    'h1 find of the takeover held until the first run is released',
    'h1 find released after its job was taken over',
    'h1 find of the takeover released',
    'h1 create vm0: done',
  ];
  const [holdBefore, releaseBefore] = held('create', 'before');
  const [holdAfter, releaseAfter] = held('create', 'after');
  const [migrateHold, migrateRelease] = held('migrate', 'before');
  const [migrateHoldAfter, migrateReleaseAfter] = held('migrate', 'after');
  const [stopHold, stopRelease] = held('shutdown', 'before');
  const [stopHoldAfter, stopReleaseAfter] = held('shutdown', 'after');
  return [
    {
      // Seen at 10,000 creates under load: the first run, its lock lapsed in check-plan, went on to create
      // the VM; the takeover's check-plan then found it and failed the job as stale. The first run's journal
      // write is now refused (the lock is the takeover's), so it stops there and the takeover creates the VM.
      name: 'lock lapses in check-plan and the first run goes on before the takeover looks: it is fenced off, the takeover creates the VM, nothing is stale',
      ...check('after', 1000),
      log: checkTakeover,
    },
    {
      // The takeover runs in the same worker (one agent per host queue), whose lock manager tracks locks by
      // job id: the first run ending untracked the takeover's lock, which then lapsed, and BullMQ failed the
      // job as stalled twice. A run that lost its job now ends only once the takeover in its worker has.
      name: 'lock lapses in check-plan and the takeover goes on long after the first run stopped: its lock is still renewed',
      ...check('after', 6000),
      log: checkTakeover,
    },
    {
      // The other order: the takeover creates the VM while the first run is held; the first run then finds
      // it in check-plan, and its failure is not written over the finished job's journal.
      name: 'lock lapses in check-plan and the takeover creates the VM first: the first run finds it and stops without acting',
      ...check('before'),
      log: [
        'h1 find held before it took effect; the agent renews no lock',
        'h1 create vm0: done',
        'h1 find released after its job was taken over',
      ],
    },
    {
      name: 'lock lapses while xl create is held before it ran: the takeover creates the VM, the late create is refused',
      ...create('before'),
      log: [
        holdBefore!,
        'h1 create vm0: done',
        releaseBefore!,
        'h1 create vm0: refused: h1: libxl: error: Domain with name "vm0" already exists.',
      ],
    },
    {
      name: 'lock lapses while xl create is held after it ran: the takeover finds the VM running and creates nothing',
      ...create('after'),
      log: ['h1 create vm0: done', holdAfter!, releaseAfter!],
    },
    {
      name: 'lock lapses while xl migrate is held before it ran: the takeover moves the VM, the late migrate is refused',
      ...migrate('before'),
      log: [
        migrateHold!,
        'h1 migrate vm0 to h2: done',
        migrateRelease!,
        'h1 migrate vm0 to h2: refused: h1: vm0 is an invalid domain identifier (rc=-6)',
      ],
    },
    {
      name: 'lock lapses while xl migrate is held after it ran: the takeover finds the VM on h2 and moves nothing',
      ...migrate('after'),
      log: ['h1 migrate vm0 to h2: done', migrateHoldAfter!, migrateReleaseAfter!],
    },
    {
      name: 'lock lapses while the shutdown of a restart resize is held after it ran: the takeover starts it resized, once',
      ...resize('after'),
      log: ['h1 shutdown vm0 (domid 1): done', stopHoldAfter!, 'h1 create vm0: done', stopReleaseAfter!],
    },
    {
      // The late run stops by the domid it saw (workflows/reconfigure-vm.ts): that instance is gone, so its
      // shutdown changes nothing, and the resized VM (a new domid) is stopped once, by the takeover. Stopping
      // by name, the late run stopped the resized VM a second time and started it again.
      name: 'lock lapses while the shutdown of a restart resize is held before it ran: the late shutdown must not stop the resized VM',
      ...resize('before'),
      log: [
        stopHold!,
        'h1 shutdown vm0 (domid 1): done',
        'h1 create vm0: done',
        stopRelease!,
        'h1 shutdown vm0 (domid 1): no effect',
      ],
    },
  ];
}
